"""`bekb chat`: ask, then follow up in context."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bekb import AnswerError, Conversation, KnowledgeBase, UsageError
from bekb.cli import render
from bekb.cli.app import open_kb
from bekb.cli.query import FullPath, NoLlm, answer_on_terminal, ready
from bekb.inputs import MAX_K, check_k, check_persona

HELP_LINES = (
    "Ask a question; a follow-up is understood in the context of the ones before.",
    "/sources   the sources of the last answer",
    "/show N    the lines of source N",
    "/help      this list; Ctrl-D (end of input) leaves",
)


def register(app: typer.Typer) -> None:
    """Add `bekb chat` to `app`."""
    app.command("chat")(chat_command)


def chat_command(
    ctx: typer.Context,
    no_llm: NoLlm = False,
    persona: Annotated[
        str | None, typer.Option("--as", help="Answer as another agent file (name or path).")
    ] = None,
    k: Annotated[
        int | None, typer.Option("-k", "--k", help=f"Passages to retrieve (1-{MAX_K}).")
    ] = None,
    no_expand: Annotated[
        bool, typer.Option("--no-expand", help="Search the questions only, not Claude's rewrites.")
    ] = False,
    full_path: FullPath = False,
) -> None:
    """Talk with the knowledge base: ask, then follow up ("and how do I test them?"); each
    question is answered with the turns before it. /sources lists the last answer's
    sources, /show N prints the lines of source N, Ctrl-D leaves. Reads questions from a
    pipe too, one per line.

    Example: bekb chat --as backend-specialist
    """
    check_k(k)
    kb = open_kb(ctx)
    kb.persona(check_persona(persona))  # an unknown agent fails here, not on every question
    kb = ready(kb, quiet=False, refresh=False)
    chat = kb.chat(
        k=k,
        persona=persona,
        use_llm=False if no_llm else None,
        expand=False if no_expand else None,
    )
    interactive = sys.stdin.isatty()
    if interactive:
        render.echo(HELP_LINES[0] + " /help for commands.", err=True)
    while True:
        try:
            line = input("> " if interactive else "").strip()
        except EOFError:
            return
        if not line:
            continue
        if line.startswith("/"):
            _command(line, chat, kb, full_path=full_path)
            continue
        try:
            answer_on_terminal(kb, chat.ask, line, full_path=full_path)
        except (UsageError, AnswerError) as exc:  # this question failed, not the conversation
            render.echo(f"error: {exc}", err=True)


def _command(line: str, chat: Conversation, kb: KnowledgeBase, *, full_path: bool) -> None:
    """A /command; a mistake is one line on stderr and the conversation goes on."""
    name, _, argument = line.partition(" ")
    last = chat.last
    try:
        if name == "/help":
            render.echo("\n".join(HELP_LINES))
        elif name in ("/sources", "/show") and (last is None or not last.citations):
            raise UsageError("no sources yet: ask a question first")
        elif name == "/sources" and last is not None:
            render.print_rich(
                render.citation_line(c, root=kb.settings.root, full_path=full_path)
                for c in last.citations
            )
        elif name == "/show" and last is not None:
            if not argument.strip().isdigit() or not 1 <= int(argument) <= len(last.citations):
                raise UsageError(f"/show takes a source number, 1 to {len(last.citations)}")
            excerpt = kb.show(last.citations[int(argument) - 1].location)
            render.print_rich(
                render.excerpt_lines(excerpt, root=kb.settings.root, full_path=full_path)
            )
        else:
            raise UsageError(f"unknown command {name}: /help lists them")
    except UsageError as exc:
        render.echo(f"error: {exc}", err=True)
