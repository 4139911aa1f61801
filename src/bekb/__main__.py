"""`python -m bekb` runs the command line."""

from bekb.cli.app import main

if __name__ == "__main__":  # not when a worker process imports it (multiprocessing spawn)
    main()
