"""``python -m memadvise`` runs the command line."""

from memadvise.cli import main

main()
