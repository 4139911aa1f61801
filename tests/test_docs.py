"""The README's library example runs, and every command is documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
COMMANDS = ["index", "search", "ask", "status", "corpus status", "corpus sync", "eval", "mcp"]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_readme_library_example_runs(cited_index, tmp_path, monkeypatch, capsys):
    # The example uses the defaults (./corpus, ./index), as after `make ask`.
    (tmp_path / "corpus").symlink_to(cited_index.root)
    (tmp_path / "index").symlink_to(cited_index.index_dir)
    monkeypatch.chdir(tmp_path)
    [example] = python_blocks(README.read_text())
    exec(compile(example, "README.md", "exec"), {})
    first, second = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r".+\.md(#.+)? \(lines \d+-\d+\)", first)
    assert second.startswith("extractive [")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_a_readme_mention(command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEKB_")}
    done = subprocess.run(
        [sys.executable, "-m", "bekb", *command.split(), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Example" in done.stdout or "bekb " in done.stdout
    assert f"bekb {command}" in README.read_text()


def test_configuration_doc_is_generated_from_the_settings():
    sys.path.insert(0, str(README.parent / "scripts"))
    from gen_config_docs import DOC, render

    assert DOC.read_text() == render(), "run: python scripts/gen_config_docs.py"
