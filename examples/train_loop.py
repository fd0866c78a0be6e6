"""A plain PyTorch training loop, unchanged by memadvise: profile it with

    memadvise run examples/train_loop.py --epochs 3 --batch-size 32

or call memadvise.track(model, optimizer) around the loop (see README.md).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    data = torch.utils.data.TensorDataset(torch.randn(256, 784), torch.randint(0, 10, (256,)))
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=True)
    for epoch in range(args.epochs):
        for images, labels in loader:
            loss = nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        print(f"epoch {epoch}: loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
