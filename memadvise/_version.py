"""The version of memadvise (one place; ``memadvise.__version__`` reads it)."""

__version__ = "0.1.0"
