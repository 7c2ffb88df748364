"""`python -m lmech.cli`: the same command as the `lmech` script."""

from lmech.cli.commands import main

main()
