"""A real `chroma run` server on a free loopback port, for server-mode tests and benchmarks.

`ChromaServer(path)` is a context manager: it starts the server from the chromadb package
installed beside this interpreter, waits until the heartbeat answers, and stops it (SIGTERM,
then SIGKILL) on exit. The pytest fixtures `chroma_server` (one server per test module) and
`chroma_url` (that server emptied before each test) build on it; import both into a test
module to use them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

# The console script chromadb installs next to the interpreter (`chroma run` is its Rust server).
CHROMA = Path(sys.executable).with_name("chroma")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def heartbeat(url: str, timeout: float = 1.0) -> bool:
    """Whether a Chroma server answers its heartbeat at `url`."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=timeout) as response:
            return "nanosecond heartbeat" in json.loads(response.read())
    except (OSError, ValueError):
        return False


class ChromaServer:
    """One `chroma run --path PATH --port PORT --host 127.0.0.1` subprocess."""

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = path.with_name(path.name + ".log")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> ChromaServer:
        """Start the server and wait until its heartbeat answers (or fail with its log)."""
        if not CHROMA.exists():
            raise RuntimeError(f"no `chroma` console script at {CHROMA}")
        self.path.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(CHROMA),
                    "run",
                    "--path",
                    str(self.path),
                    "--port",
                    str(self.port),
                    "--host",
                    "127.0.0.1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if heartbeat(self.url):
                return self
            time.sleep(0.1)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"`chroma run` did not answer at {self.url} within {timeout}s:\n{tail}")

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)

    def clear(self) -> None:
        """Delete every collection on the server (a clean slate between tests)."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        client = chromadb.HttpClient(
            host="127.0.0.1", port=self.port, settings=ChromaSettings(anonymized_telemetry=False)
        )
        for collection in client.list_collections():
            client.delete_collection(collection.name)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A running Chroma server shared by one test module (its data in a tmp dir)."""
    with ChromaServer(tmp_path_factory.mktemp("chroma-server") / "data") as server:
        yield server


@pytest.fixture
def chroma_url(chroma_server: ChromaServer) -> str:
    """The module's Chroma server, emptied for this test: its URL."""
    if not chroma_server.running:
        raise RuntimeError(
            f"the Chroma server at {chroma_server.url} died; see {chroma_server.log}"
        )
    chroma_server.clear()
    return chroma_server.url
