"""`bekb mcp --http`: says where it listens, serves the same tools, refuses what it should."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_support import SAGA, bekb_args, data, env, run

from bekb import Settings

READY = "listening on http://127.0.0.1:"


def _start(settings: Settings, folder: Path, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    log = folder / "stderr.log"
    process = subprocess.Popen(
        [sys.executable, *bekb_args(settings, *extra)],
        env=env(),
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
    )
    return process, log


def _ready_url(process: subprocess.Popen[str], log: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while READY not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no ready line"
        time.sleep(0.1)
    [line] = [line for line in log.read_text().splitlines() if line.startswith(READY)]
    return line.removeprefix("listening on ")


def _run_to_exit(settings: Settings, folder: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *bekb_args(settings, *flags)],
        env=env(),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def http_server(
    cited_index: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`bekb mcp --http 0` on the cited index: its URL (from its ready line) and stderr."""
    folder = tmp_path_factory.mktemp("http")
    process, log = _start(cited_index, folder, "--http", "0")
    try:
        yield _ready_url(process, log), log
    finally:
        _stop(process)


def test_says_where_it_listens_on_stderr(http_server: tuple[str, Path]) -> None:
    url, log = http_server
    assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
    assert int(url.split(":")[2].split("/")[0]) > 0  # port 0 reported as the real port
    assert log.read_text().splitlines() == [f"listening on {url}"]


def test_serves_the_tools_over_streamable_http(http_server: tuple[str, Path]) -> None:
    url, _ = http_server

    async def main() -> Any:
        async with (
            streamable_http_client(url) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = (await session.list_tools()).tools
            return tools, await session.call_tool("search", {"query": "saga", "k": 1})

    tools, result = run(main)
    assert {t.name for t in tools} >= {"search", "ask", "get_document", "reindex"}
    [hit] = data(result)["hits"]
    assert hit["path"].startswith(SAGA)


def test_a_busy_port_is_one_line_and_exit_1(cited_index: Settings, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _run_to_exit(cited_index, tmp_path, "--http", str(port))
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: the port is in use"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--http", "0", "--host", "0.0.0.0"],
            "--host 0.0.0.0 is not loopback: add --allow-remote to serve it anyway",
        ),
        (["--host", "::1"], "--host and --allow-remote apply to --http only"),
    ],
)
def test_host_flags_are_checked_before_serving(
    tiny_settings: Settings, tmp_path: Path, flags: list[str], message: str
) -> None:
    done = _run_to_exit(tiny_settings, tmp_path, *flags)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {message}"


def test_a_remote_host_warns_before_it_listens(tiny_settings: Settings, tmp_path: Path) -> None:
    process, log = _start(
        tiny_settings, tmp_path, "--http", "0", "--host", "0.0.0.0", "--allow-remote"
    )
    try:
        deadline = time.monotonic() + 60
        while "listening on http://0.0.0.0:" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        _stop(process)
    assert "warning: serving on 0.0.0.0, without authentication" in log.read_text()
