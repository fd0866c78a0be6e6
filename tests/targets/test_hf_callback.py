"""``memadvise.integrations.hf.MemadviseCallback`` inside a real ``Trainer.train()`` (tiny GPT-2, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from memadvise.errors import UsageError
from memadvise.model.profile import load_profile

transformers = pytest.importorskip("transformers")
hf = pytest.importorskip("memadvise.integrations.hf")

CONFIG = dict(n_layer=1, n_embd=32, n_head=2, vocab_size=300, n_positions=32)


class Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.randint(0, 300, (16,))
        return {"input_ids": ids, "labels": ids}


@pytest.mark.slow
def test_the_callback_profiles_the_first_steps_and_training_goes_on(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**CONFIG))
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=4, report_to=[],
        use_cpu=True, save_strategy="no", logging_strategy="no", dataloader_num_workers=0,
        disable_tqdm=True,
    )
    callback = hf.MemadviseCallback(steps=2, output=tmp_path / "p.json")
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[callback])
    trainer.train()
    assert trainer.state.global_step == 4  # training went on after the watched steps
    prof = callback.profile
    unique = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    assert prof.param_bytes == sum(unique.values())  # tied embeddings counted once
    assert prof.grad_bytes == prof.param_bytes and prof.optimizer == "adamw"
    state = trainer.optimizer.optimizer.state.values()  # accelerate's wrapper around torch's AdamW
    held = sum(t.nbytes for s in state for t in s.values() if isinstance(t, torch.Tensor))
    assert prof.optimizer_state_bytes == held  # two fp32 moments and a step count per parameter
    assert prof.steps == 2 and prof.batch_size == 4
    assert prof.peak_bytes > prof.param_bytes + prof.grad_bytes + prof.optimizer_state_bytes
    assert load_profile(tmp_path / "p.json").peak_bytes == prof.peak_bytes


def test_bad_settings_are_usage_errors() -> None:
    for steps in (0, -1, "2", True, 10**6):
        with pytest.raises(UsageError):
            hf.MemadviseCallback(steps=steps)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="ready once"):
        _ = hf.MemadviseCallback().profile
