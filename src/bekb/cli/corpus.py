"""`bekb corpus status|sync`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bekb import contracts
from bekb.cli import render
from bekb.cli.app import EXIT_FAILURE, open_kb


def register(app: typer.Typer) -> None:
    """Add `bekb corpus status|sync` to `app`."""
    group = typer.Typer(
        help="The corpus: which files are cited, and syncing them.", no_args_is_help=True
    )
    group.command("status")(corpus_status_command)
    group.command("sync")(corpus_sync_command)
    app.add_typer(group, name="corpus")


def corpus_status_command(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Every cited path with its state: indexed, new, changed, deleted or unresolved.

    Example: bekb corpus status --json
    """
    status = open_kb(ctx).corpus_status()
    if json_out:
        render.print_json(contracts.corpus_json(status))
        return
    render.echo(f"root {status.root}")
    for f in status.files:
        render.echo(f"  {f.state:10} {f.path}")
    for path in status.unresolved:
        render.echo(f"  {'unresolved':10} {path}")
    for refused in status.refused:
        render.echo(f"  {'refused':10} {refused.path}: {refused.reason}")


def corpus_sync_command(
    ctx: typer.Context,
    mirror: Annotated[
        Path | None,
        typer.Option("--from", help="Copy from a local mirror (another workspace root)."),
    ] = None,
    lock: Annotated[
        Path | None, typer.Option("--lock", help="Lock file (default corpus/sources.lock.json).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Fetch the pinned corpus into the root, verifying every sha256.

    Offline, copy from a mirror (another workspace root) with --from.

    Example: bekb corpus sync --from ../shared/corpus
    """
    report = open_kb(ctx).sync(mirror=mirror, lock_file=lock)
    if json_out:
        render.print_json(contracts.sync_json(report))
    else:
        for repo in report.repos:
            render.echo(
                f"{repo.name}: {repo.fetched} fetched, {repo.copied} copied, "
                f"{repo.skipped} up to date, {repo.failed} failed"
            )
        for failure in report.failures:
            render.echo(f"error: {failure}", err=True)
        for path in report.unpinned:
            render.echo(f"not in the lock: {path} (re-pin: {report.repin})", err=True)
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)
