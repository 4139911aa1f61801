"""`python -m bekb` runs the command line."""

from bekb.cli.app import main

main()
