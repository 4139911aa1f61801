"""`bekb personas`: the agent files answers can speak as (`bekb ask --as NAME`)."""

from __future__ import annotations

from typing import Annotated

import typer

from bekb import contracts
from bekb.cli import render
from bekb.cli.app import open_kb
from bekb.domain import Agent

# A description longer than this is cut on the terminal (--json keeps it whole).
SHOWN_CHARS = 72


def register(app: typer.Typer) -> None:
    """Add `bekb personas` to `app`."""
    app.command("personas")(personas_command)


def personas_command(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print the agents as JSON.")] = False,
) -> None:
    """List the agent files of the index (with how many files each cites and answers from)
    and the other agent files under the root.

    `bekb ask --as NAME` answers as a configured one from its own files; as another, from
    the whole index. Example: bekb personas --json
    """
    kb = open_kb(ctx)
    agents = kb.agents()
    if json_out:
        render.print_json(contracts.personas_json(str(kb.settings.root.resolve()), agents))
        return
    render.echo("agents of the index (--as NAME answers from its own files):")
    for agent in agents.configured:
        counts = f"cites {agent.cited_files} indexed files, answers from {agent.own_files}"
        render.echo(f"  {_line(agent)}  [{counts}]")
    if not agents.configured:
        render.echo("  none: set agent_files in bekb.toml")
    if agents.others:
        render.echo("other agent files under the root (--as NAME answers from the whole index):")
        for agent in agents.others:
            render.echo(f"  {_line(agent)}")


def _line(agent: Agent) -> str:
    about = " ".join(agent.description.split())
    if len(about) > SHOWN_CHARS:
        about = about[: SHOWN_CHARS - 1] + "…"
    return f"{agent.name} ({agent.path})" + (f": {about}" if about else "")
