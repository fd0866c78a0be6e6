"""memadvise inside other libraries' training loops: :mod:`memadvise.integrations.hf` (Hugging Face
``Trainer``), :mod:`memadvise.integrations.lightning` (PyTorch Lightning ``Trainer``). Each integration
imports its library only when used."""
