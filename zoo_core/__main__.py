"""``python -m zoo_core`` runs the ``zoo`` command line."""

from zoo_core.cli import main

main()
