"""The `bekb` command (and `python -m bekb`): the command line, Ctrl-C during start-up too."""

import sys


def main() -> None:
    """Entry point of the `bekb` command."""
    try:  # what start-up imports is inside: a Ctrl-C then is "interrupted", not a traceback
        from bekb.cli.app import build_app, run

        app = build_app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)  # bekb.cli.app's EXIT_INTERRUPTED (which may not be imported yet)
    sys.exit(run(app))


if __name__ == "__main__":  # not when a worker process imports it (multiprocessing spawn)
    main()
