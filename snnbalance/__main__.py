"""``python -m snnbalance`` runs the CLI."""

from .cli import main

main()
