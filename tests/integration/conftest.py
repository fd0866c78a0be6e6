"""Shared setup of the integration tests that compare with the ground truth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One intra-op thread for a module's measurements (some CPU kernels size scratch buffers by thread
    count); restored afterwards. Modules opt in with ``pytest.mark.usefixtures("single_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
