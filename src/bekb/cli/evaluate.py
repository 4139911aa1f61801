"""`bekb eval FILE`: score retrieval on golden questions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bekb.cli import render
from bekb.cli.app import open_kb


def register(app: typer.Typer) -> None:
    """Add `bekb eval` to `app`."""
    app.command("eval")(eval_command)


def eval_command(
    ctx: typer.Context,
    questions: Annotated[
        Path, typer.Argument(help="Golden questions (JSONL, eval/dev.jsonl format).")
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Measure retrieval: file hit@1/@5, MRR@10, evidence@5, abstention; misses listed.

    Example: bekb --root ../shared/corpus eval ../shared/eval/dev.jsonl
    """
    report = open_kb(ctx).evaluate(questions).as_dict()
    if json_out:
        render.print_json(report)
        return
    columns = ("hit@1", "hit@5", "mrr@10", "evid@5", "abst", "f.abst")
    render.echo(f"{'':14}{'n':>4} " + " ".join(f"{c:>7}" for c in columns))
    render.echo(_row("overall", report["overall"]))
    for name, metrics in report["by_kind"].items():
        render.echo(_row(f"kind {name}", metrics))
    for name, metrics in report["by_corpus"].items():
        render.echo(_row(f"corpus {name}", metrics))
    if report["skipped"]:
        render.echo(
            f"({report['skipped']} `corpus: full` questions skipped: index with --scope workspace)"
        )
    for miss in report["misses"]:
        render.echo(
            f"miss {miss['id']} rank={miss['rank']} evidence={miss['evidence']}: {miss['question']}"
        )


def _row(name: str, m: dict[str, Any]) -> str:
    abstain = "-" if m["abstain_rate"] is None else f"{m['abstain_rate']:.2f}"
    values = [f"{m[key]:.2f}" for key in ("hit@1", "hit@5", "mrr@10", "evidence@5")]
    values += [abstain, f"{m['false_abstain_rate']:.2f}"]
    return f"{name:14}{m['n']:>4} " + " ".join(f"{v:>7}" for v in values)
