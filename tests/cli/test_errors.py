"""Bad input gets one clear line on stderr and a meaningful exit code, never a traceback."""

from __future__ import annotations

import pytest
from cli_support import CliResult, invoke

from bekb.cli.app import build_app


def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
    return invoke(build_app(), args, env=env)


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
    assert done.code == code
    assert message in done.err


def test_search_on_an_empty_question_is_a_usage_error(cited_index):
    done = run(
        "--root", str(cited_index.root), "--index-dir", str(cited_index.index_dir), "search", "   "
    )
    assert (done.code, done.err) == (2, "error: the query is empty\n")


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
    assert (done.code, done.err) == (2, "error: k must be at least 1 (got -3)\n")


def test_invalid_environment_setting_is_a_usage_error(tmp_path):
    done = run("status", env={"BEKB_K": "many"})
    assert done.code == 2
    assert done.err.startswith("error: invalid setting k:")


def test_help_explains_every_command_and_the_exit_codes():
    done = run("--help")
    assert done.code == 0
    for command in ("index", "search", "ask", "status", "corpus", "eval", "mcp"):
        assert command in done.out
    assert "Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 nothing found" in done.out


def test_the_bekb_command_maps_errors_to_exit_codes_as_a_process(tmp_path):
    import subprocess
    import sys

    def bekb(*args: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-m", "bekb", *args], capture_output=True, text=True, timeout=60
        )
        return done.returncode, done.stderr

    assert bekb("nosuch")[0] == 2
    assert bekb("--root", str(tmp_path / "none"), "status") == (
        2,
        f"error: workspace root {tmp_path / 'none'} does not exist: pass --root, set "
        "BEKB_ROOT, or run `bekb corpus sync`\n",
    )
