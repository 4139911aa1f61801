"""`bekb search` and `bekb ask`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bekb import Answer, UsageError, contracts
from bekb.answering.extractive import not_covered
from bekb.cli import render
from bekb.cli.app import EXIT_EMPTY, open_kb
from bekb.inputs import MAX_K, check_k, check_persona, check_text

if TYPE_CHECKING:
    from bekb import KnowledgeBase


def register(app: typer.Typer) -> None:
    """Add `bekb search`, `bekb ask` and `bekb show` to `app`."""
    app.command("search")(search_command)
    app.command("ask")(ask_command)
    app.command("show")(show_command)


def argument_text(value: str) -> str:
    """A command-line argument as text: bytes that are not UTF-8 become U+FFFD.

    Python hands such bytes over as lone surrogates, which JSON output cannot encode.
    """
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def ready(kb: KnowledgeBase, *, quiet: bool, refresh: bool) -> KnowledgeBase:
    """The knowledge base, its index built first if this is the first run.

    Warns (one line, stderr) when indexed files changed since, unless they are refreshed.
    """
    if kb.is_built():
        if not (refresh or kb.settings.auto_refresh):
            stale = kb.stale()
            if stale:
                render.echo(
                    f"warning: {len(stale)} file(s) changed since the last index; answers may "
                    "quote old text (run `bekb index`, or pass --refresh)",
                    err=True,
                )
    else:
        render.echo("no index yet: building it now (first run)", err=True)
        if quiet:
            kb.index()
        else:
            from bekb.cli.progress import IndexProgress

            with IndexProgress() as progress:
                report = kb.index(on_progress=progress.update)
            render.echo(render.index_summary(report), err=True)
    return kb


Refresh = Annotated[
    bool, typer.Option("--refresh", help="Re-index changed files before searching.")
]
FailEmpty = Annotated[
    bool, typer.Option("--fail-empty", help="Exit 3 when nothing is found (or ask abstains).")
]
FullPath = Annotated[
    bool,
    typer.Option("--full-path", help="Print absolute paths (default: relative to the root)."),
]
NoLlm = Annotated[
    bool, typer.Option("--no-llm", help="Quote the best passages; do not call Claude.")
]


def search_command(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[
        int | None,
        typer.Option("-k", "--k", help=f"Number of hits (1-{MAX_K}; more is capped at {MAX_K})."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Show each hit's score (its fused relevance: higher is better, comparable "
            "within one search only) with its dense and BM25 ranks.",
        ),
    ] = False,
    full_path: FullPath = False,
    refresh: Refresh = False,
    fail_empty: FailEmpty = False,
) -> None:
    """Search the knowledge base: the best passages, each as path:start-end with its
    heading and the lines that matched (matched words in bold on a terminal).

    `bekb show` opens any place printed here. Example: bekb search "saga compensation" -k 5
    """
    query = argument_text(query)
    check_text(query, "query")  # at once: a first run would build the index before failing
    check_k(k)
    kb = ready(open_kb(ctx), quiet=json_out, refresh=refresh)
    hits = kb.search(query, k=k, refresh=refresh)
    if json_out:
        render.print_json(contracts.search_json(query, hits))
    elif hits:
        root = kb.settings.root
        render.print_rich(
            line
            for n, hit in enumerate(hits, start=1)
            for line in render.hit_lines(n, hit, root=root, full_path=full_path, explain=explain)
        )
    else:
        render.echo("no hits")
    if fail_empty and not hits:
        raise typer.Exit(EXIT_EMPTY)


def show_command(
    ctx: typer.Context,
    place: Annotated[
        str,
        typer.Argument(
            help="PATH[:START[-END]] under the root, or any place `search` or `ask` printed "
            "(a label from --json, an absolute path, a file:// link)."
        ),
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print the lines as JSON.")] = False,
    full_path: FullPath = False,
) -> None:
    """Print lines of a file under the root, numbered: what a hit or citation points at.

    Example: bekb show agents/plugins/backend-development/skills/saga-orchestration/SKILL.md:1-20
    """
    kb = open_kb(ctx)
    excerpt = kb.show(argument_text(place))
    if json_out:
        render.print_json(contracts.excerpt_json(excerpt))
    else:
        render.print_rich(render.excerpt_lines(excerpt, root=kb.settings.root, full_path=full_path))


def ask_command(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="Your question.")],
    no_llm: NoLlm = False,
    llm: Annotated[
        str | None, typer.Option("--llm", help="`anthropic` to require synthesis by Claude.")
    ] = None,
    persona: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Answer as another agent file (name or path), e.g. fastapi-pro; a configured "
            "one answers from its own files (`bekb personas` lists them).",
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option("-k", "--k", help=f"Passages to retrieve (1-{MAX_K}; more is capped)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    full_path: FullPath = False,
    refresh: Refresh = False,
    fail_empty: FailEmpty = False,
    no_expand: Annotated[
        bool,
        typer.Option(
            "--no-expand", help="Search the question only, not also Claude's rewrites of it."
        ),
    ] = False,
) -> None:
    """Answer a question in the specialist's voice, with numbered citations.

    With ANTHROPIC_API_KEY set, Claude writes the answer from the retrieved passages (the
    question is also searched as Claude rewrites it, and Claude may search again: each
    search it makes is shown as one dim line); without it (or with --no-llm), the best
    passages are quoted.

    Example: bekb ask "how do I do sagas"
    """
    if llm not in (None, "anthropic"):
        raise UsageError(f"unknown --llm {llm!r}: the only provider is 'anthropic'")
    question = argument_text(question)
    persona = argument_text(persona) if persona is not None else None
    check_text(question, "question")
    check_k(k)
    check_persona(persona)
    use_llm = False if no_llm else (True if llm else None)
    kb = open_kb(ctx)
    if use_llm and not kb.settings.llm_enabled:
        raise UsageError("--llm anthropic needs ANTHROPIC_API_KEY")
    kb = ready(kb, quiet=json_out, refresh=refresh)
    if json_out:
        answer = kb.ask(
            question,
            k=k,
            persona=persona,
            use_llm=use_llm,
            refresh=refresh,
            expand=False if no_expand else None,
        )
        render.print_json(contracts.answer_json(answer))
    else:
        asked = partial(
            kb.ask,
            k=k,
            persona=persona,
            use_llm=use_llm,
            refresh=refresh,
            expand=False if no_expand else None,
        )
        answer = answer_on_terminal(kb, asked, question, full_path=full_path)
    if fail_empty and answer.mode == "abstain":
        raise typer.Exit(EXIT_EMPTY)


def answer_on_terminal(
    kb: KnowledgeBase, ask: Callable[..., Answer], question: str, *, full_path: bool
) -> Answer:
    """`ask(question, on_text=..., on_search=...)`, Claude's text streamed as it comes and
    each search it makes shown as one dim line, then the sources and notices."""
    streamed: list[str] = []

    def show(delta: str) -> None:
        streamed.append(delta)
        render.echo(delta, nl=False)

    def searched(query: str) -> None:
        if streamed and not streamed[-1].endswith("\n"):
            show("\n")
        typer.secho(render.plain(f"searching: {query}"), dim=True)

    answer: Answer = ask(question, on_text=show, on_search=searched)
    show_answer(
        answer,
        streamed=bool(streamed),
        keyless=not kb.settings.llm_enabled,
        root=kb.settings.root,
        full_path=full_path,
    )
    return answer


ENABLE_HINT = "Set ANTHROPIC_API_KEY to have Claude synthesise an answer from these passages."


def show_answer(
    answer: Answer, *, streamed: bool, keyless: bool, root: Path, full_path: bool
) -> None:
    """An answer on the terminal, after its streamed text (if any): sources and notices."""
    if streamed:
        render.echo("\n")
    if answer.mode != "llm" or not streamed:  # Claude broke off mid-answer: quote instead
        render.print_rich(
            render.answer_lines(answer.text, answer.citations, root=root, full_path=full_path)
        )
    if answer.mode == "llm" and answer.uncovered:
        render.echo(not_covered(answer.uncovered))
    if answer.mode == "llm" and answer.citations:
        render.echo("Sources:")
        render.print_rich(
            render.citation_line(c, root=root, full_path=full_path) for c in answer.citations
        )
    if answer.notice:
        render.echo(f"warning: {answer.notice}", err=True)
    if answer.persona_notice:
        render.echo(f"note: {answer.persona_notice}", err=True)
    if answer.mode == "llm" and not answer.citations and answer.hits:
        render.echo("Passages it was given:")
        render.print_rich(
            line
            for n, hit in enumerate(answer.hits[:3], start=1)
            for line in render.hit_lines(n, hit, root=root, full_path=full_path, explain=False)
        )
    if answer.mode == "extractive" and keyless:
        render.echo(ENABLE_HINT, err=True)
