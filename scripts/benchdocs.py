"""Writing benchmark results into docs/benchmarks.md, one `## heading` section at a time."""

from __future__ import annotations

from pathlib import Path


def write_sections(path: Path, sections: dict[str, str]) -> None:
    """Replace (or append) each `## heading` section, keeping the rest of the file.

    Each body starts with its own `## heading` line.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    for heading, body in sections.items():
        lines = text.splitlines()
        marker = f"## {heading}"
        if marker in lines:
            start = lines.index(marker)
            end = next(
                (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
            )
            lines[start:end] = [*body.rstrip("\n").splitlines(), ""]
            text = "\n".join(lines).rstrip("\n") + "\n"
        else:
            text = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
