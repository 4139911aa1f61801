"""`bekb index [--full] [--watch]` and `bekb status`."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from bekb import contracts
from bekb.cli import render
from bekb.cli.app import open_kb
from bekb.corpus.selection import unusable_agent_line


def register(app: typer.Typer) -> None:
    """Add `bekb index` and `bekb status` to `app`."""
    app.command("index")(index_command)
    app.command("status")(status_command)


def index_command(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Rebuild everything from scratch.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    lock_timeout: Annotated[
        float | None,
        typer.Option("--lock-timeout", help="Seconds to wait for another writer's lock."),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Keep running: re-index on every change, one line per rebuild."
        ),
    ] = False,
) -> None:
    """Index the corpus: only what changed since the last build (unless --full).

    Example: bekb --root ../shared/corpus index
    """
    kb = open_kb(ctx, lock_timeout=lock_timeout)
    if watch:
        _watch(kb, full=full, json_out=json_out)
        return
    if json_out:
        report = kb.index(full=full, on_progress=render.wait_notice)
        render.print_json(contracts.index_json(report))
        return
    from bekb.cli.progress import IndexProgress

    with IndexProgress() as progress:
        report = kb.index(full=full, on_progress=progress.update)
    for skipped in report.skipped:
        render.echo(f"skipped {skipped.path}: {skipped.reason}", err=True)
    for refused in report.refused:
        render.echo(f"refused {refused.path}: {refused.reason}", err=True)
    for path in report.unresolved:
        render.echo(f"unresolved citation: {path}", err=True)
    render.echo(render.index_summary(report))


def _watch(kb: Any, *, full: bool, json_out: bool) -> None:
    """`bekb index --watch`: a line per rebuild (JSON Lines with --json) until Ctrl-C."""
    import json
    import time

    from bekb import BekbError, IndexReport

    warned: set[str] = set()

    def rebuilt(report: IndexReport) -> None:
        notes = [f"skipped {s.path}: {s.reason}" for s in report.skipped]
        notes += [f"refused {r.path}: {r.reason}" for r in report.refused]
        notes += [f"unresolved citation: {path}" for path in report.unresolved]
        for note in notes:  # a standing warning is shown once, not after every save
            if note not in warned:
                render.echo(note, err=True)
        warned.clear()
        warned.update(notes)
        if json_out:
            render.echo(json.dumps(contracts.index_json(report)))
        else:
            render.echo(f"{time.strftime('%H:%M:%S')} {render.index_summary(report)}")

    def failed(exc: BekbError) -> None:
        render.echo(f"error: {exc}", err=True)

    try:
        if full:
            rebuilt(kb.index(full=True))
        render.echo(f"watching {kb.settings.root} for changes (Ctrl-C to stop)", err=True)
        with _stop_on_ctrl_c() as stop:
            kb.watch(on_rebuild=rebuilt, on_error=failed, stop_event=stop)
    except KeyboardInterrupt:
        pass
    render.echo("stopped watching", err=True)


@contextlib.contextmanager
def _stop_on_ctrl_c() -> Iterator[threading.Event]:
    """An event that, while inside, the first Ctrl-C sets instead of raising; a second raises.

    Why: a KeyboardInterrupt raised in the middle of a rebuild can land inside a Chroma call
    (Rust), which then did not always come back (a CI run hung on Ctrl-C). The watcher
    checks `stop` between rebuilds, every debounce step.
    """
    stop = threading.Event()

    def on_ctrl_c(_signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def status_command(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show the index at a glance: model, files, chunks, last build, stale files.

    Example: bekb status --json
    """
    status = open_kb(ctx).status()
    if json_out:
        render.print_json(contracts.status_json(status))
        return
    if status.store_problem:
        render.echo(f"problem     {status.store_problem}")
    for agent in status.unusable_agents:
        render.echo(
            f"problem     {unusable_agent_line(agent)}; `bekb index` refuses until it is "
            "restored or agent_files changes"
        )
    for kept in status.set_aside:
        render.echo(
            f"set aside   {kept}: a damaged store kept for inspection (delete it when done)"
        )
    if not status.built:
        advice = "" if status.store_problem else ": run `bekb index`"  # the problem says what
        render.echo(f"no index in {status.index_dir}{advice}")
        return
    render.echo(f"root        {status.root}")
    render.echo(
        f"index       {status.index_dir} ({status.store}, {status.size_bytes / 1e6:.1f} MB)"
    )
    render.echo(f"agent files {', '.join(status.agent_files)}")
    render.echo(
        f"model       {status.embed_model} ({status.dimensions} dims, queries via "
        f"{status.query_backend}); chunker v{status.chunker_version}"
    )
    render.echo(f"vectors     {status.index_backend} (`index_backend` in docs/configuration.md)")
    if status.rebuild_pending:
        render.echo(
            f"rebuild     {status.rebuild_pending}: the next `bekb index` re-embeds every "
            "chunk (searches use this index until then)"
        )
    render.echo(f"contents    {status.files} files, {status.chunks} chunks")
    adapter = "fitted to this corpus" if status.query_adapter else "none"
    render.echo(
        f"adapter     query adapter {adapter} (see `query_adapter` in docs/configuration.md)"
    )
    render.echo(f"last build  {status.last_build} ({status.last_build_seconds:.1f}s)")
    if status.stale:
        render.echo(f"stale       {len(status.stale)} files changed since: run `bekb index`")
        for f in status.stale:
            render.echo(f"  {f.state:8} {f.path}")
    else:
        render.echo("stale       none")
