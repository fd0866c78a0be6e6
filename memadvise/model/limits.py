"""Upper bounds of the counts memadvise accepts: far above any real run, low enough that a typo (an extra
zero, a pasted number) is an error at once rather than a run that never ends or an overflow."""

from __future__ import annotations

MAX_STEPS = 1000  # traced steps: a leak shows within a few; more only take longer
MAX_BATCH_SIZE = 1 << 24  # samples per forward pass (also --trace-batch-size, --min-batch)
MAX_SEQ_LEN = 1 << 24  # tokens
MAX_IMAGE_SIZE = 1 << 16  # pixels per image side
MAX_GRAD_ACCUM = 1 << 16  # micro-batches per optimizer step
MAX_GPUS = 1 << 16  # GPUs per node, nodes, FSDP ranks
MAX_WORKERS = 1024  # DataLoader workers
MAX_ROWS = 100_000  # rows of a table (--top)
MAX_DEPTH = 1000  # levels of the module tree
