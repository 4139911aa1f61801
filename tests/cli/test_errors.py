"""Bad input gets one clear line on stderr and a meaningful exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEKB_", "ANTHROPIC_"))}
    return subprocess.run(
        [sys.executable, "-m", "bekb", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(
            ["--root", "/nonexistent/root", "search", "x"],
            2,
            "error: workspace root /nonexistent/root does not exist",
            id="missing-root",
        ),
        pytest.param(["search", "x", "-k", "abc"], 2, "Invalid value", id="bad-k-type"),
        pytest.param(["nosuch"], 2, "No such command", id="unknown-command"),
        pytest.param(
            ["ask", "x", "--llm", "openai"], 2, "error: unknown --llm 'openai'", id="unknown-llm"
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, code, message, tmp_path):
    done = run(*args)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_search_on_an_empty_question_is_a_usage_error(cited_index):
    done = run(
        "--root", str(cited_index.root), "--index-dir", str(cited_index.index_dir), "search", "   "
    )
    assert (done.returncode, done.stderr) == (2, "error: the query is empty\n")


def test_negative_k_is_a_usage_error(cited_index):
    done = run(
        "--root",
        str(cited_index.root),
        "--index-dir",
        str(cited_index.index_dir),
        "search",
        "sagas",
        "-k",
        "-3",
    )
    assert (done.returncode, done.stderr) == (2, "error: k must be at least 1 (got -3)\n")


def test_invalid_environment_setting_is_a_usage_error(tmp_path):
    env = {**os.environ, "BEKB_K": "many"}
    done = subprocess.run(
        [sys.executable, "-m", "bekb", "status"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid setting k:")


def test_help_explains_every_command_and_the_exit_codes():
    done = run("--help")
    assert done.returncode == 0
    for command in ("index", "search", "ask", "status", "corpus", "eval", "mcp"):
        assert command in done.stdout
    assert "Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 nothing found" in done.stdout
