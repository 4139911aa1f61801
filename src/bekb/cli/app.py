"""Typer root: global options, settings, the KnowledgeBase, and BekbError → exit codes.

Exit codes: 0 success; 1 runtime failure (I/O, store, API); 2 usage error (bad arguments or
input); 3 nothing found or abstained, when the caller asked for that to count as failure
(`--fail-empty`); 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bekb.errors import BekbError, ConfigError, UsageError, one_line

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_EMPTY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    name="bekb",
    help="A backend-engineering knowledge base: index the specialist's cited skill docs, "
    "then search them or ask questions with cited answers.\n\n"
    "Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 nothing found (with --fail-empty).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    root: Annotated[
        Path | None, typer.Option("--root", help="Workspace root (env BEKB_ROOT).")
    ] = None,
    index_dir: Annotated[
        Path | None, typer.Option("--index-dir", help="Index folder (env BEKB_INDEX_DIR).")
    ] = None,
    chroma_url: Annotated[
        str | None,
        typer.Option("--chroma-url", help="Chroma server URL (env BEKB_CHROMA_URL)."),
    ] = None,
    embed_model: Annotated[
        str | None,
        typer.Option("--embed-model", help="Embedding model id or path (env BEKB_EMBED_MODEL)."),
    ] = None,
    scope: Annotated[
        str | None,
        typer.Option("--scope", help="`cited` (default) or `workspace` (every skill and agent)."),
    ] = None,
) -> None:
    ctx.obj = {
        "root": root,
        "index_dir": index_dir,
        "chroma_url": chroma_url,
        "embed_model": embed_model,
        "scope": scope,
    }


def open_kb(ctx: typer.Context, **flags: Any) -> Any:
    """The KnowledgeBase for this command: settings from every source, flags last."""
    from bekb import KnowledgeBase, Settings

    return KnowledgeBase.open(Settings.load(**{**(ctx.obj or {}), **flags}))


def fail(message: str, code: int) -> typer.Exit:
    """Print one error line to stderr and give the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


COMMAND_MODULES = ("corpus", "eval", "index", "mcp", "query")


def main() -> None:
    """Entry point of the `bekb` command: runs the app and maps errors to exit codes."""
    import importlib

    from typer._click import ClickException
    from typer._click.exceptions import UsageError as ClickUsageError

    for name in COMMAND_MODULES:  # each module registers its commands on `app`
        importlib.import_module(f"bekb.cli.{name}")
    try:
        # Without standalone mode, a command's `typer.Exit(code)` comes back as the result.
        result = app(standalone_mode=False)
        sys.exit(result if isinstance(result, int) else EXIT_OK)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except ClickException as exc:  # typer's own usage errors (unknown option, bad value)
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, ClickUsageError) else EXIT_FAILURE)
    except (UsageError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except BekbError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # anything unforeseen still gets one line, not a traceback
        typer.echo(f"error: unexpected {type(exc).__name__}: {one_line(exc)}", err=True)
        sys.exit(EXIT_FAILURE)
    except BaseException as exc:  # a native extension's panic (pyo3's PanicException)
        if isinstance(exc, SystemExit | GeneratorExit):
            raise
        typer.echo(f"error: unexpected {type(exc).__name__}: {one_line(exc)}", err=True)
        sys.exit(EXIT_FAILURE)
