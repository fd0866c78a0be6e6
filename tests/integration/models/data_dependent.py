"""A CTC model whose forward reads its labels' values: a range check, a random choice made with
``.item()`` and used as an index, ``nonzero`` on the labels' padding, and a CTC loss whose buffers
depend on the label lengths. Labels are padded with -100 to varying lengths."""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (4,)
VOCAB = 12
FRAMES = 60
FEATURES = 20


class CTCNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(FEATURES, 96), nn.ReLU(), nn.Linear(96, 96), nn.ReLU())
        self.head = nn.Linear(96, VOCAB)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.max() >= VOCAB:
            raise ValueError(f"labels must be below {VOCAB}")
        crops = (FRAMES, FRAMES - 20)  # picked at random the way torchvision's detection transform does
        frames = crops[int(torch.empty(1).uniform_(0.0, float(len(crops))).item())]
        log_probs = self.head(self.body(features[:, :frames])).log_softmax(-1).transpose(0, 1)
        mask = labels >= 0
        padding = (~mask).nonzero()  # one row per padded label position
        targets = labels.masked_select(mask)
        input_lengths = torch.full((features.shape[0],), frames, dtype=torch.long)
        loss = nn.functional.ctc_loss(log_probs, targets, input_lengths, mask.sum(-1), zero_infinity=True)
        return loss + 0.0 * padding.shape[0]


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return CTCNet()


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    labels = torch.randint(1, VOCAB, (batch_size, 16))
    for row in range(batch_size):
        labels[row, 4 + 3 * row :] = -100
    return {"features": torch.randn(batch_size, FRAMES, FEATURES), "labels": labels}


def loss_fn(output: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return output
