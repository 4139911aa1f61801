"""`bekb mcp`: serve the knowledge base to agents over MCP."""

from __future__ import annotations

from typing import Annotated

import typer

from bekb.cli import render
from bekb.cli.app import open_kb


def register(app: typer.Typer) -> None:
    """Add `bekb mcp` to `app`."""
    app.command("mcp")(mcp_command)


def mcp_command(
    ctx: typer.Context,
    http: Annotated[
        int | None,
        typer.Option(
            "--http",
            metavar="PORT",
            min=1,
            max=65535,
            help="Serve streamable HTTP on 127.0.0.1:PORT (at /mcp) instead of stdio.",
        ),
    ] = None,
) -> None:
    """Run an MCP server with the tools search, ask, list_sources and get_document.

    Stdio by default, for an agent that starts it (stdout carries the protocol, logs go to
    stderr). Run `bekb index` first; `ask` uses Claude when ANTHROPIC_API_KEY is set.

    Example: claude mcp add bekb -- bekb --root /path/to/corpus mcp
    """
    from bekb.mcp.server import serve

    kb = open_kb(ctx)
    if not kb.is_built():
        render.echo("warning: no index yet: run `bekb index` first", err=True)
    serve(kb, http_port=http)
