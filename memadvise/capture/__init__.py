"""Capture: run a model's training (or inference) steps under hooks and a recorder, and return a Profile.

``loader`` reads a model file; ``training`` is the step that runs; ``tracer`` owns the hooks and the
recorder — a real run's allocator events (``events``) or a fake run's dispatch mode over meta tensors
(``fake``, with ``kernel_buffers`` for what kernels allocate unseen) — and ``allocations`` turns the
events into a ``Profile``. ``fsdp`` traces one rank of FSDP2; ``flops``, ``health``, ``leaks``,
``leak_sources`` and ``host_memory`` add their figures. Everything here imports torch.
"""
