"""`bekb init [DIR]`: write a bekb.toml for a folder of agents and skills."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bekb import contracts
from bekb.cli import render
from bekb.cli.corpus import PROBLEMS
from bekb.corpus.layouts import init_config, layout_counts
from bekb.domain import InitReport


def register(app: typer.Typer) -> None:
    """Add `bekb init` to `app`."""
    app.command("init")(init_command)


def init_command(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help="The folder holding the agents and skills.")
    ] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bekb.toml.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Write a commented bekb.toml for the agents and skills in a folder (default: here).

    Recognised: a folder of agent files, `.claude/agents/*.md` and `.claude/skills/*/SKILL.md`,
    plugins (`plugins/*/agents`, `plugins/*/skills`), a root of several repositories. Prints
    what it found, what the settings select and the next commands; an existing bekb.toml is
    kept unless --force (exit 2).

    Example: bekb init ~/code/my-project
    """
    report = init_config(folder, force=force)
    if json_out:
        render.print_json(contracts.init_json(report))
        return
    _print(report)


def _print(report: InitReport) -> None:
    render.echo(f"found in {report.folder}:")
    for layout in report.layouts:
        render.echo(f"  {layout.kind:9} {', '.join(layout.where)} ({layout_counts(layout)})")
    render.echo(f"wrote {report.config}:")
    if report.agent_files:
        render.echo(f"  persona   {report.agent_files[0]}")
        render.echo(f"  agents    {len(report.agent_files)} (what they cite is indexed)")
    for pattern in report.include:
        render.echo(f"  include   {pattern}")
    if report.scope == "workspace":
        render.echo("  scope     workspace (every skill folder and agent file)")
    render.echo(f"  index     {report.index_dir}")
    unresolved = len(report.unresolved_citations)
    render.echo(f"selected: files {report.files}, unresolved citations {unresolved}")
    for cited in report.unresolved_citations:
        why = PROBLEMS[cited.problem]
        render.echo(f"  unresolved {cited.path}: {why} (cited by {cited.agent_file})")
    if not report.files:
        render.echo(
            "warning: nothing to index yet: add `include` globs (or agent files that cite "
            f"documents) to {report.config}",
            err=True,
        )
    render.echo("next:")
    for command in report.next_commands:
        render.echo(f"  {command}")
