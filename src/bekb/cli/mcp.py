"""`bekb mcp`: serve the knowledge base to agents over MCP."""

from __future__ import annotations

from typing import Annotated

import typer

from bekb.cli import render
from bekb.cli.app import EXIT_FAILURE, error_line, open_kb
from bekb.errors import UsageError


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
            min=0,
            max=65535,
            help="Serve streamable HTTP on HOST:PORT at /mcp instead of stdio (0: a free port).",
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to serve HTTP on (loopback unless --allow-remote)."),
    ] = "127.0.0.1",
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a --host other than loopback (no authentication: anyone who reaches "
            "it can read the knowledge base and start builds).",
        ),
    ] = False,
) -> None:
    """Run an MCP server: tools search, ask, get_document, list_sources, status and reindex;
    each indexed document as a resource (bekb://PATH); each persona as a prompt.

    Stdio by default, for an agent that starts it (stdout carries the protocol, logs go to
    stderr). With --http, "listening on http://HOST:PORT/mcp" is printed on stderr once it is
    up; a port in use exits 1. Tools run in parallel. `ask` uses Claude when
    ANTHROPIC_API_KEY is set. Without an index, an agent can build one with `reindex`.

    Example: claude mcp add bekb -- bekb --root /path/to/corpus mcp
    """
    from bekb.mcp.server import build_server
    from bekb.mcp.transport import LOOPBACK, ListenError, serve_http, serve_stdio

    if http is None and (host != "127.0.0.1" or allow_remote):
        raise UsageError("--host and --allow-remote apply to --http only")
    if host not in LOOPBACK and not allow_remote:
        raise UsageError(f"--host {host} is not loopback: add --allow-remote to serve it anyway")
    kb = open_kb(ctx)
    if not kb.is_built():
        render.echo("warning: no index yet: run `bekb index` (or call the reindex tool)", err=True)
    server = build_server(kb)
    try:
        if http is None:
            serve_stdio(server)
            return
        if host not in LOOPBACK:
            render.echo(
                f"warning: serving on {host}, without authentication: anyone who can reach it "
                "can read the knowledge base and start builds",
                err=True,
            )
        serve_http(server, host, http)
    except ListenError as exc:
        error_line(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
