"""A PyTorch Lightning training script, unchanged by memadvise: profile it with

    memadvise run examples/train_lightning.py --epochs 1 --batch-size 32

or add memadvise.integrations.lightning.MemadviseCallback to the Trainer's callbacks (see README.md).
"""

from __future__ import annotations

import argparse

import lightning.pytorch as L
import torch
from torch import nn


class Classifier(L.LightningModule):
    def __init__(self, lr: float = 1e-3) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = nn.functional.cross_entropy(self(images), labels)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(256, 784), torch.randint(0, 10, (256,)))
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=True)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(Classifier(args.lr), loader)
    print(f"trained {trainer.global_step} steps")


if __name__ == "__main__":
    main()
