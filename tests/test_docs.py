"""The README's library example runs, and every command is documented."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import typer
from cli_support import invoke

from bekb.cli.app import build_app

README = Path(__file__).resolve().parents[1] / "README.md"


def command_paths(app: typer.Typer) -> list[str]:
    """Every command of the app as typed after `bekb` ("index", "corpus status", ...)."""
    root = typer.main.get_command(app)
    paths: list[str] = []

    def walk(command: object, prefix: str) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            paths.append(prefix)
            return
        for name, child in sorted(children.items()):
            walk(child, f"{prefix} {name}".strip())

    walk(root, "")
    return paths


COMMANDS = command_paths(build_app())


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_the_command_list_is_read_from_the_app():
    assert {"index", "search", "ask", "status", "corpus status", "corpus sync"} <= set(COMMANDS)


def test_readme_library_example_runs(cited_index, tmp_path, monkeypatch, capsys):
    # The example uses the defaults (./corpus, ./index), as after `make ask`.
    (tmp_path / "corpus").symlink_to(cited_index.root)
    (tmp_path / "index").symlink_to(cited_index.index_dir)
    monkeypatch.chdir(tmp_path)
    example = python_blocks(README.read_text())[0]
    exec(compile(example, "README.md", "exec"), {})
    first, second, *shown = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r".+\.md:\d+-\d+", first)
    assert second.startswith("extractive [") and second.endswith("] ()")
    assert shown  # the cited lines


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_a_readme_mention(command):
    done = invoke(build_app(), [*command.split(), "--help"])
    assert done.code == 0, done.err
    example = re.search(r"Example:\s*(.+)", done.out)
    assert example, f"`bekb {command} --help` shows no example"
    words = example.group(1).split()
    assert "bekb" in words and all(word in words for word in command.split()), example.group(1)
    assert f"bekb {command}" in README.read_text()


def test_configuration_doc_is_generated_from_the_settings():
    sys.path.insert(0, str(README.parent / "scripts"))
    from gen_config_docs import DOC, render

    assert DOC.read_text() == render(), "run: python scripts/gen_config_docs.py"
