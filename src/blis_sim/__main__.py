"""``python -m blis_sim`` runs the CLI."""

from .cli import main

main()
