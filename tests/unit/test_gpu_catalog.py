"""The GPU catalog: the data file loads, names resolve, overhead estimates follow their documented rules."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from memadvise.errors import UsageError
from memadvise.planner import gpus

GiB = 2**30
MiB = 2**20
H200_MEASUREMENTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "gpu_h200.json"

REQUIRED = [
    "RTX 3060 12GB",
    "RTX 3090",
    "RTX 4090",
    "RTX 5090 32GB",
    "T4",
    "L4",
    "A10",
    "L40S",
    "A100 40GB",
    "A100 80GB",
    "H100 80GB",
    "H200",
    "V100 16GB",
    "V100 32GB",
    "RTX 4080 16GB",
    "RTX A6000",
    "RTX 4060 Ti 16GB",
    "A40",
]


def test_catalog_loads_every_required_card() -> None:
    names = {spec.name for spec in gpus.load_catalog()}
    assert set(REQUIRED) <= names


def test_catalog_is_cached() -> None:
    assert gpus.load_catalog() is gpus.load_catalog()


def test_data_file_is_a_list_of_objects_with_the_documented_fields() -> None:
    rows = json.loads(resources.files("memadvise.planner").joinpath("data/gpus.json").read_text())
    assert isinstance(rows, list)
    for row in rows:
        assert {
            "name",
            "aliases",
            "memory_bytes",
            "bf16",
            "bandwidth_gbps",
            "architecture",
            "compute_capability",
            "kind",
            "note",
        } <= set(row), row["name"]


@pytest.mark.parametrize("spec", gpus.load_catalog(), ids=lambda s: s.name)
def test_entries_are_plausible(spec: gpus.GpuSpec) -> None:
    # the driver reports a little less than the marketed size, never more than 10% less
    marketed = {"H200": 141 * 10**9}.get(spec.name)
    assert spec.memory_bytes > 10 * GiB
    if marketed:
        assert 0.9 * marketed < spec.memory_bytes <= 1.1 * marketed
    assert spec.kind in gpus.KINDS
    assert spec.bandwidth_gbps > 100
    assert spec.note
    if spec.bf16_tflops is not None:
        assert spec.bf16
    # bf16 tensor cores arrived with Ampere (compute capability 8.0)
    assert spec.bf16 == (spec.compute_capability_tuple >= (8, 0))


def test_memory_figures() -> None:
    assert gpus.find_gpu("RTX 4090").memory_bytes == 24564 * MiB
    assert gpus.find_gpu("A100 80GB").memory_bytes == 80 * GiB
    assert gpus.find_gpu("H100").memory_bytes == 81559 * MiB
    assert gpus.find_gpu("RTX 5090").memory_bytes == 32 * GiB


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("4090", "RTX 4090"),
        ("rtx4090", "RTX 4090"),
        ("GeForce RTX-4090", "RTX 4090"),
        ("  rtx 4090  ", "RTX 4090"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),  # torch.cuda.get_device_name()
        ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
        ("Tesla T4", "T4"),
        ("NVIDIA H100 80GB HBM3", "H100 80GB"),
        ("a10", "A10"),
        ("A10G", "A10G"),
        ("l40s", "L40S"),
        ("h200", "H200"),
        ("rtx 3060", "RTX 3060 12GB"),
    ],
)
def test_find_gpu(text: str, name: str) -> None:
    assert gpus.find_gpu(text).name == name


@pytest.mark.parametrize("text", ["A100", "a-100", "V100"])
def test_ambiguous_prefix_lists_the_matches(text: str) -> None:
    with pytest.raises(UsageError, match="ambiguous") as info:
        gpus.find_gpu(text)
    if text.lower().startswith("a"):
        assert "A100 40GB, A100 80GB" in str(info.value)


def test_prefix_of_one_card_is_suggested_not_taken() -> None:
    with pytest.raises(UsageError, match="did you mean 'L40S'"):
        gpus.find_gpu("L40")


def test_unknown_gpu_is_one_sentence_with_known_names() -> None:
    with pytest.raises(UsageError) as info:
        gpus.find_gpu("Voodoo 3")
    message = str(info.value)
    assert "unknown GPU 'Voodoo 3'" in message
    assert "RTX 4090" in message and "H100 80GB" in message
    assert "\n" not in message


def test_empty_name() -> None:
    with pytest.raises(UsageError):
        gpus.find_gpu(" - ")


def _h200() -> dict[str, Any]:
    """What bench/results/gpu_h200.json measured on an H200 (bench/gpu_validate.py): per case, the
    memory the process held outside the caching allocator (NVML used minus reserved) at the end of an
    inference or training loop, and the cuBLAS/cuBLASLt workspace after warm-up matmuls."""
    data = json.loads(H200_MEASUREMENTS.read_text())
    outside: dict[str, list[int]] = {"inference": [], "training": []}
    workspaces = set()
    for case in data["cases"].values():
        workspaces.add(case["cublas_workspace"])
        for loop, run in case.get("measured", {}).items():
            kind = "inference" if loop == "inference" else "training"
            if "nvml_used_end" in run:  # runs that failed (out of memory, unsupported) have no reading
                outside[kind].append(run["nvml_used_end"] - run["reserved_end_abs"])
    return {
        "environment": data["environment"],
        "context": {kind: max(values) for kind, values in outside.items()},
        "cases": {kind: len(values) for kind, values in outside.items()},
        "workspaces": workspaces,
    }


def test_hopper_figures_are_the_h200_measurements() -> None:
    """The Hopper context and workspace figures are the H200's measured ones (the largest reading of
    each), and the H200 entry is the card that was measured."""
    measured = _h200()
    h200 = gpus.find_gpu("H200")
    assert measured["cases"]["inference"] >= 10 and measured["cases"]["training"] >= 10
    assert measured["environment"]["compute_capability"] == h200.compute_capability
    assert measured["environment"]["nvml_total_bytes"] == h200.memory_bytes
    assert gpus.cuda_context_bytes(h200, training=False) == measured["context"]["inference"]
    assert gpus.cuda_context_bytes(h200, training=True) == measured["context"]["training"]
    (workspace,) = measured["workspaces"]
    assert gpus.library_workspace_bytes(h200, training=False) == workspace
    assert "hopper" in gpus.CONTEXT_MEASURED


def test_unmeasured_context_figures_are_plausible() -> None:
    """The other architectures' context figures are not measured (only Hopper's is), so they can only be
    checked for plausibility: training (a second cuBLAS handle) holds more than inference, and no
    architecture holds much more than the measured Hopper context."""
    hopper_training = gpus.cuda_context_bytes(gpus.find_gpu("H200"))
    for spec in gpus.load_catalog():
        inference, training = gpus.cuda_context_bytes(spec, training=False), gpus.cuda_context_bytes(spec)
        assert 200 * MiB <= inference < training <= 1.2 * hopper_training, spec.name


def test_cublas_workspace_per_handle() -> None:
    """PyTorch's default cuBLAS workspace per handle (CUDABlasHandlePool): ``:4096:2:16:8`` before Hopper,
    32 MiB from compute capability 9.0 on; cuBLASLt's 1 MiB beside it; one handle per thread and stream."""
    a100, h100 = gpus.find_gpu("A100 80GB"), gpus.find_gpu("H100")
    assert gpus.library_workspace_bytes(a100, training=False) == 2 * 4096 * 1024 + 8 * 16 * 1024 + MiB
    # training: the main thread and the autograd engine's thread each have a handle
    assert gpus.library_workspace_bytes(a100) == 2 * gpus.library_workspace_bytes(a100, training=False)
    assert gpus.library_workspace_bytes(h100, training=False) == 33 * MiB
    assert gpus.library_workspace_bytes(h100, streams=2) == 4 * 33 * MiB
    with pytest.raises(UsageError):
        gpus.library_workspace_bytes(gpus.find_gpu("T4"), streams=0)


def test_import_does_not_import_torch() -> None:
    code = (
        "import sys, memadvise.planner.gpus, memadvise.planner.cuda_allocator, memadvise.analyzer.sharding; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
