"""Typer root: global options, the KnowledgeBase factory, and BekbError → exit codes.

Exit codes: 0 success; 1 runtime failure (I/O, store, API); 2 usage error (bad arguments or
input, settings that select no file to index, `bekb init` refusing to replace a bekb.toml); 3
nothing found or abstained, when the caller asked for that to count as failure
(`--fail-empty`); 130 interrupted; 141 output pipe closed early (`bekb search … | head`).

`build_app(factory)` makes the app around any way of opening a knowledge base (tests pass one
with a stand-in model and run commands in process with typer's CliRunner); `bekb.__main__`
runs it with the real one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from bekb.cli import render
from bekb.errors import BekbError, ConfigError, UsageError, one_line

if TYPE_CHECKING:
    from bekb.knowledge_base import KnowledgeBase
    from bekb.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_EMPTY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a tool killed by a closed pipe reports

KnowledgeBaseFactory = Callable[["Settings"], "KnowledgeBase"]

HELP = (
    "A backend-engineering knowledge base: index the specialist's cited skill docs, "
    "then search them or ask questions with cited answers.\n\n"
    "Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 nothing found (with --fail-empty)."
)


def _open_real(settings: Settings) -> KnowledgeBase:
    from bekb.knowledge_base import KnowledgeBase

    return KnowledgeBase(settings)


@dataclass
class CliState:
    """What the root command hands every command: its flags and how to open the KB."""

    factory: KnowledgeBaseFactory
    flags: dict[str, Any] = field(default_factory=dict)


def open_kb(ctx: typer.Context, **flags: Any) -> KnowledgeBase:
    """The KnowledgeBase for this command: settings from every source, flags last."""
    from bekb.settings import Settings

    state = ctx.find_object(CliState)
    if state is None:  # a command invoked without the root (never from the `bekb` command)
        state = CliState(_open_real)
    return state.factory(Settings.load(**{**state.flags, **flags}))


def error_line(message: str) -> None:
    """Print one error line on stderr."""
    render.echo(f"error: {message}", err=True)


class _Root(TyperGroup):
    """The root group: turns what a command raises into one stderr line and an exit code.

    Done here rather than around `app()` so that every way of running the app (the `bekb`
    command, typer's CliRunner in tests) maps errors the same way.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except (UsageError, ConfigError) as exc:
            error_line(str(exc))
            raise typer.Exit(EXIT_USAGE) from exc
        except BekbError as exc:
            error_line(str(exc))
            raise typer.Exit(EXIT_FAILURE) from exc
        except KeyboardInterrupt as exc:
            render.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from exc
        except BrokenPipeError as exc:
            _silence_stdout()
            raise typer.Exit(EXIT_BROKEN_PIPE) from exc
        except render.OutputError as exc:
            error_line(f"cannot write the output: {exc}")
            raise typer.Exit(EXIT_FAILURE) from exc
        except Exception as exc:
            if _is_click_error(exc):
                raise
            # anything unforeseen still gets one line, not a traceback
            error_line(f"unexpected {type(exc).__name__}: {one_line(exc)}")
            raise typer.Exit(EXIT_FAILURE) from exc
        except BaseException as exc:  # a native extension's panic (pyo3's PanicException)
            if isinstance(exc, GeneratorExit):
                raise
            error_line(f"unexpected {type(exc).__name__}: {one_line(exc)}")
            raise typer.Exit(EXIT_FAILURE) from exc


def _is_click_error(exc: BaseException) -> bool:
    from typer._click import ClickException

    return isinstance(exc, ClickException)


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and the flush at exit must not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        render.echo(f"bekb {version('bekb')}")
        raise typer.Exit(EXIT_OK)


def build_app(factory: KnowledgeBaseFactory | None = None) -> typer.Typer:
    """The `bekb` app, opening knowledge bases with `factory` (default: the real one)."""
    from bekb.cli import chat, corpus, evaluate, index, init, mcp, personas, query

    app = typer.Typer(
        name="bekb",
        cls=_Root,
        help=HELP,
        no_args_is_help=True,
        add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    opener = factory or _open_real

    @app.callback()
    def global_options(
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
            typer.Option(
                "--embed-model", help="Embedding model id or path (env BEKB_EMBED_MODEL)."
            ),
        ] = None,
        scope: Annotated[
            str | None,
            typer.Option(
                "--scope", help="`cited` (default) or `workspace` (every skill and agent)."
            ),
        ] = None,
        version: Annotated[
            bool,
            typer.Option(
                "--version", help="Print bekb's version and exit.", is_eager=True, callback=_version
            ),
        ] = False,
    ) -> None:
        ctx.obj = CliState(
            opener,
            {
                "root": root,
                "index_dir": index_dir,
                "chroma_url": chroma_url,
                "embed_model": embed_model,
                "scope": scope,
            },
        )

    for module in (init, index, query, chat, personas, corpus, evaluate, mcp):  # as `--help` lists
        module.register(app)
    return app


def run(app: typer.Typer, args: Sequence[str] | None = None) -> int:
    """Run `app` on `args` (default: the command line) and return its exit code."""
    from typer._click import ClickException
    from typer._click.exceptions import UsageError as ClickUsageError

    try:
        # Without standalone mode, a command's `typer.Exit(code)` comes back as the result.
        result = app(args=args, standalone_mode=False)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
        return result if isinstance(result, int) else EXIT_OK
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        render.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except ClickException as exc:  # typer's own usage errors (unknown option, bad value)
        exc.show()
        return EXIT_USAGE if isinstance(exc, ClickUsageError) else EXIT_FAILURE
    except KeyboardInterrupt:
        render.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # stdout on a full disk
        error_line(f"cannot write the output: {exc.strerror or one_line(exc)}")
        return EXIT_FAILURE
