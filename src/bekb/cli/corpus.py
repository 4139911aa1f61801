"""`bekb corpus status|sync|pin`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bekb import contracts
from bekb.cli import render
from bekb.cli.app import EXIT_FAILURE, open_kb

# How `bekb corpus status` and `bekb init` say why a citation names no usable file.
PROBLEMS = {"missing": "missing", "outside_root": "outside the root", "not_text": "not a text file"}


def register(app: typer.Typer) -> None:
    """Add `bekb corpus status|sync|pin` to `app`."""
    group = typer.Typer(
        help="The corpus: which files are cited, and syncing them.", no_args_is_help=True
    )
    group.command("status")(corpus_status_command)
    group.command("sync")(corpus_sync_command)
    group.command("pin")(corpus_pin_command)
    app.add_typer(group, name="corpus")


def corpus_status_command(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Every cited path with its state: indexed, new, changed, deleted or unresolved.

    An unresolved citation says why: missing, outside the root, or not a text file. The
    last line counts them.

    Example: bekb corpus status --json
    """
    status = open_kb(ctx).corpus_status()
    if json_out:
        render.print_json(contracts.corpus_json(status))
        return
    render.echo(f"root {status.root}")
    for f in status.files:
        render.echo(f"  {f.state:10} {f.path}")
    for cited in status.unresolved_citations:
        detail = f": {cited.detail}" if cited.detail else ""
        why = f"{PROBLEMS[cited.problem]}{detail}"
        render.echo(f"  {'unresolved':10} {cited.path}: {why} (cited by {cited.agent_file})")
    citations = {c.path for c in status.unresolved_citations if c.problem != "missing"}
    for refused in status.refused:
        if refused.path not in citations:  # a refused citation is listed above
            render.echo(f"  {'refused':10} {refused.path}: {refused.reason}")
    for pattern in status.unmatched_globs:
        render.echo(f"  {'unmatched':10} include glob {pattern!r} matches no file")
    render.echo(_counts(contracts.corpus_counts(status)))


def _counts(counts: dict[str, int]) -> str:
    states = ", ".join(f"{s} {counts[s]}" for s in ("indexed", "new", "changed", "deleted"))
    problems = ", ".join(f"{text} {counts[p]}" for p, text in PROBLEMS.items())
    return (
        f"files {counts['files']} ({states}); unresolved citations "
        f"{counts['unresolved_citations']} ({problems}); refused {counts['refused']}"
    )


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


def corpus_pin_command(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Lock file to write (default: the lock_file setting)."),
    ] = None,
    agents: Annotated[
        list[str] | None,
        typer.Option("--agent", help="Agent file to pin for (repeatable; default: configured)."),
    ] = None,
) -> None:
    """Pin what the agent files cite under the root: each file's sha256 and size, and each
    repository's commit from the root's SOURCES.json, into the lock file `corpus sync` reads.

    Example: bekb --root ../shared/corpus corpus pin --out corpus/sources.lock.json
    """
    kb = open_kb(ctx)
    lock = kb.pin(out=out, agent_files=agents or ())
    size = sum(file.size for file in lock.files)
    repos = len({file.repo for file in lock.files})
    written = out or kb.settings.lock_file
    render.echo(
        f"pinned {len(lock.files)} files ({size} bytes) from {repos} repositories to {written}"
    )
