"""``python -m pricing.cli``: the command line, for environments without the script."""

from pricing.cli.main import main

main()
