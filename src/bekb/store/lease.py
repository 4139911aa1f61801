"""The writer lease: one writer at a time on a shared Chroma server, across machines.

The file lock (`bekb.indexing.lock`) only guards one machine; on a shared server another
machine's writer could otherwise delete this one's uncommitted chunks as orphans. Chroma has
no compare-and-set, so a lease is taken by writing it, waiting longer than a request takes,
and reading it back: of two writers racing, only the last one written keeps it. The holder
renews it (a new beat) while it works. Expiry is judged on the waiter's own monotonic clock,
never by comparing timestamps written on another machine: a lease whose beat has not moved
for LEASE_TTL seconds of the waiter's watching belongs to a writer that died.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType

from bekb.errors import IndexLockedError, StoreError
from bekb.store.chroma import MetaRecords

LEASE = "writer"
# Seconds without a new beat after which a lease counts as abandoned (a killed writer blocks
# others this long); the holder beats every third of it.
LEASE_TTL = 30.0
# Pause between writing the lease and reading it back: far above one request's latency.
LEASE_SETTLE = 0.3
LEASE_POLL = 0.5

WaitCallback = Callable[[str, float], None]


class WriterLease:
    """Context manager holding the lease, waiting up to `timeout` seconds for another writer.

    `on_wait(holder, seconds_left)` is told, about once a second, who holds it meanwhile.
    """

    def __init__(
        self,
        records: MetaRecords,
        *,
        where: str,
        timeout: float,
        on_wait: WaitCallback | None = None,
    ) -> None:
        self._records = records
        self._where = where
        self._timeout = timeout
        self._on_wait = on_wait
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._beat = 0
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> WriterLease:
        deadline = time.monotonic() + self._timeout
        seen: tuple[str, int] | None = None  # the other holder's (owner, beat) last read
        seen_at = 0.0  # when (our clock) that beat was first read
        while True:
            held = self._read()
            now = time.monotonic()
            if held is None or held[0] == self.owner:
                if self._take():
                    break
                continue
            if held != seen:
                seen, seen_at = held, now
            elif now - seen_at >= LEASE_TTL:  # no beat for a whole TTL: its writer is gone
                if self._take():
                    break
                continue
            if now >= deadline:
                raise IndexLockedError(
                    f"another writer ({held[0]}) is indexing into {self._where}; gave up after "
                    f"{self._timeout:g}s (wait for it, or raise --lock-timeout)"
                )
            if self._on_wait is not None:
                self._on_wait(held[0], max(0.0, LEASE_TTL - (now - seen_at)))
            time.sleep(LEASE_POLL)
        self._renewer = threading.Thread(target=self._renew, daemon=True)
        self._renewer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with contextlib.suppress(StoreError):
            held = self._read()
            if held is not None and held[0] == self.owner:
                self._records.delete([LEASE], "release the write lease")

    def _take(self) -> bool:
        self._write()
        time.sleep(LEASE_SETTLE)
        held = self._read()
        return held is not None and held[0] == self.owner

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_TTL / 3):
            with contextlib.suppress(StoreError):
                self._write()

    def _write(self) -> None:
        self._beat += 1
        record = {"owner": self.owner, "beat": self._beat}
        self._records.put(LEASE, record, "write the write lease")

    def _read(self) -> tuple[str, int] | None:
        data = self._records.get(LEASE, "read the write lease")
        if data is None or "owner" not in data:
            return None
        return str(data["owner"]), int(data.get("beat", 0))
