"""`bekb search` and `bekb ask`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bekb import Answer, UsageError, contracts
from bekb.cli import render
from bekb.cli.app import EXIT_EMPTY, open_kb
from bekb.inputs import MAX_K, check_k, check_text

if TYPE_CHECKING:
    from bekb import KnowledgeBase


def register(app: typer.Typer) -> None:
    """Add `bekb search` and `bekb ask` to `app`."""
    app.command("search")(search_command)
    app.command("ask")(ask_command)


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


def search_command(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[
        int | None,
        typer.Option("-k", "--k", help=f"Number of hits (1-{MAX_K}; more is capped at {MAX_K})."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each hit's dense and BM25 ranks.")
    ] = False,
    refresh: Refresh = False,
    fail_empty: FailEmpty = False,
) -> None:
    """Search the knowledge base: ranked passages with path#heading (lines a-b).

    Example: bekb search "saga compensation" -k 5
    """
    query = argument_text(query)
    check_text(query, "query")  # at once: a first run would build the index before failing
    check_k(k)
    kb = ready(open_kb(ctx), quiet=json_out, refresh=refresh)
    hits = kb.search(query, k=k, refresh=refresh)
    if json_out:
        render.print_json(contracts.search_json(query, hits))
    else:
        for n, hit in enumerate(hits, start=1):
            render.echo(f"{n:>2}. {hit.label}  score {hit.score:.4f}")
            if hit.copies:
                render.echo(f"    same text in: {'; '.join(c.label for c in hit.copies)}")
            if explain:
                e = hit.explain
                sim = f"{e.dense_similarity:.3f}" if e.dense_similarity is not None else "-"
                render.echo(
                    f"    dense #{e.dense_rank or '-'} (cos {sim}), bm25 #{e.bm25_rank or '-'}"
                )
            render.echo(f"    {render.snippet(hit.text)}")
        if not hits:
            render.echo("no hits")
    if fail_empty and not hits:
        raise typer.Exit(EXIT_EMPTY)


def ask_command(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="Your question.")],
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Quote the best passages; do not call Claude.")
    ] = False,
    llm: Annotated[
        str | None, typer.Option("--llm", help="`anthropic` to require synthesis by Claude.")
    ] = None,
    persona: Annotated[
        str | None,
        typer.Option("--as", help="Answer as another agent file (name or path), e.g. fastapi-pro."),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option("-k", "--k", help=f"Passages to retrieve (1-{MAX_K}; more is capped)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    refresh: Refresh = False,
    fail_empty: FailEmpty = False,
) -> None:
    """Answer a question in the specialist's voice, with numbered citations.

    With ANTHROPIC_API_KEY set, Claude writes the answer from the retrieved passages;
    without it (or with --no-llm), the best passages are quoted.

    Example: bekb ask "how do I do sagas"
    """
    if llm not in (None, "anthropic"):
        raise UsageError(f"unknown --llm {llm!r}: the only provider is 'anthropic'")
    question = argument_text(question)
    persona = argument_text(persona) if persona is not None else None
    check_text(question, "question")
    check_k(k)
    use_llm = False if no_llm else (True if llm else None)
    kb = open_kb(ctx)
    if use_llm and not kb.settings.llm_enabled:
        raise UsageError("--llm anthropic needs ANTHROPIC_API_KEY")
    kb = ready(kb, quiet=json_out, refresh=refresh)
    streamed: list[str] = []

    def show(delta: str) -> None:
        streamed.append(delta)
        render.echo(delta, nl=False)

    answer = kb.ask(
        question,
        k=k,
        persona=persona,
        use_llm=use_llm,
        refresh=refresh,
        on_text=None if json_out else show,
    )
    if json_out:
        render.print_json(contracts.answer_json(answer))
    else:
        show_answer(answer, streamed=bool(streamed), keyless=not kb.settings.llm_enabled)
    if fail_empty and answer.mode == "abstain":
        raise typer.Exit(EXIT_EMPTY)


ENABLE_HINT = "Set ANTHROPIC_API_KEY to have Claude synthesise an answer from these passages."


def show_answer(answer: Answer, *, streamed: bool, keyless: bool) -> None:
    """An answer on the terminal, after its streamed text (if any): sources and notices."""
    if streamed:
        render.echo("\n")
    if answer.mode != "llm" or not streamed:  # Claude broke off mid-answer: quote instead
        render.echo(answer.text)
    if answer.mode == "llm" and answer.citations:
        render.echo("Sources:")
        for c in answer.citations:
            render.echo(f"  [{c.n}] {c.label}{'  (changed since indexing)' if c.stale else ''}")
    if answer.notice:
        render.echo(f"warning: {answer.notice}", err=True)
    if answer.mode == "llm" and not answer.citations and answer.hits:
        render.echo("Passages it was given:")
        for hit in answer.hits[:3]:
            render.echo(f"  {hit.label}\n    {render.snippet(hit.text)}")
    if answer.mode == "extractive" and keyless:
        render.echo(ENABLE_HINT, err=True)
