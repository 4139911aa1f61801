"""Fixtures for answering tests: a loopback Messages-API server for the real anthropic SDK."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ holds anthropic_server.py; pytest only puts this folder on sys.path by itself.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from anthropic_server import FakeAnthropic  # noqa: E402


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    """A started `FakeAnthropic`; point a client at `anthropic_server.url`."""
    with FakeAnthropic() as server:
        yield server
