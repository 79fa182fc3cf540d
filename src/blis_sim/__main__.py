"""``python -m blis_sim`` runs the CLI (with the console scripts' signal handling)."""

from ._entry import main

main()
