"""Helpers shared by the hardening tests: the hashing CLI, trial counts, case tallies.

Not a conftest (tests/conftest.py is imported by name as `conftest`, and a second one would
shadow it): test modules here import this module directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HASHING_CLI = HERE / "hashing_cli.py"
# Environment knobs (docs/reliability.md): more SIGKILL trials, more generated cases, and a
# file that collects how many cases each category tried.
TRIALS_ENV = "BEKB_HARDENING_TRIALS"
EXAMPLES_ENV = "BEKB_HARDENING_EXAMPLES"
REPORT_ENV = "BEKB_HARDENING_REPORT"
# Read at import: tests/conftest.py clears BEKB_* from the environment of every test.
REPORT_PATH = os.environ.get(REPORT_ENV)


def setting(name: str, default: int) -> int:
    """A positive count from the environment, or `default`."""
    value = os.environ.get(name, "")
    return max(1, int(value)) if value.strip().isdigit() else default


def tally(category: str, cases: int) -> None:
    """Add `cases` to a category's count in the BEKB_HARDENING_REPORT file, when set."""
    if not REPORT_PATH or cases <= 0:
        return
    with open(REPORT_PATH, "a", encoding="utf-8") as out:
        out.write(json.dumps({"category": category, "cases": cases}) + "\n")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without BEKB_* / ANTHROPIC_* (plus `extra`); the
    session's model cache is kept."""
    from conftest import subprocess_env

    return subprocess_env(**(extra or {}))


def run_cli(
    *args: object,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`bekb ARGS` in a subprocess, with the hashing model instead of the bundled one."""
    return subprocess.run(
        [sys.executable, str(HASHING_CLI), *map(str, args)],
        capture_output=True,
        text=True,
        env=clean_env(env),
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one `error: ...` line a failed command printed (fails on a traceback or more)."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc status")


def open_fds() -> int:
    """Number of file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


PROBE = HERE / "kb_probe.py"


def probe(root: Path, index_dir: Path, agent: str, *ops: str) -> list[dict[str, object]]:
    """Library calls in a fresh process (see kb_probe.py): one result dict per op."""
    done = subprocess.run(
        [sys.executable, str(PROBE), str(root), str(index_dir), agent, *ops],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def in_process_cli(monkeypatch: Any, capsys: Any) -> Callable[..., tuple[int, str, str]]:
    """`bekb ARGS` run in this process with the hashing model (typer's CliRunner).

    Returns a function giving (exit code, stdout, stderr); it fails on a traceback.
    """
    from cli_support import hashing_app, invoke

    app = hashing_app()

    def run(*args: object) -> tuple[int, str, str]:
        done = invoke(app, args)
        return done.code, done.out, done.err

    return run


class Zygote:
    """kill_zygote.py: forks one build per request."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "kill_zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        assert self.line() == "ready"

    def line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the zygote died"
        return line.strip()

    def build(
        self, settings: Any, *, kill_at: str | None, after: float | None, full: bool, delay: float
    ) -> str:
        """Run one build; returns how it ended: `killed`, `finished` or `failed ...`."""
        assert self.process.stdin is not None
        request = {
            "root": str(settings.root),
            "index_dir": str(settings.index_dir),
            "agent": settings.agent_files[0],
            "delay": delay,
            "full": full,
            "kill_at": kill_at,
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        started = self.line()
        assert started.startswith("started "), started
        pid = int(started.split()[1])
        if after is not None:
            time.sleep(after)
            with contextlib.suppress(ProcessLookupError):  # it may have finished first
                os.kill(pid, signal.SIGKILL)
        outcome = ""
        while True:
            line = self.line()
            if line.startswith(("finished", "failed")):
                outcome = line
            elif line.startswith("exit "):
                return "killed" if line.endswith("killed") else outcome or line

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
