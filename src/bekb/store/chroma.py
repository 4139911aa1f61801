"""ChromaStore: chunks, the file registry and the index's meta records, all kept in Chroma.

The index state lives in Chroma itself (not in a side file) so that an embedded store and a
shared `chroma run` server behave the same, and two machines on one server see one truth.
Three collections per knowledge base (prefix `bekb`):
`bekb-meta` (small records: which index is active, query adapters, the writer lease),
`bekb-chunks-<fp>` (vectors, text and citation metadata) and `bekb-files-<fp>` (one record
per file: hash and chunk ids; writing it is the commit point of that file). `<fp>`
fingerprints the model and chunker settings, so a different model builds beside the old
index and never mixes with it. A replaced index is renamed `bekb-retired-<ms>-...` and
deleted a grace period later, so searches that began on it (in any process) finish.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from bekb.domain import Chunk, FileRecord, IndexMeta
from bekb.errors import StoreError, one_line
from bekb.store.health import access_problem, diagnose, set_aside, sqlite_problem

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Vectors = NDArray[np.float32]

ACTIVE = "active"
# Records per read: well under the ~32k SQL variables SQLite allows in one statement.
READ_BATCH = 5000
# Seconds a request to a Chroma server may take before it counts as a failure (default of the
# `chroma_timeout` setting).
HTTP_TIMEOUT = 30.0
_UNIT = [1.0]  # registry records need an embedding; they are never searched by vector
_T = TypeVar("_T")
# Seconds a dropped index stays readable under a retired name, for searches that read the
# active pointer just before a rebuild switched it (a search takes milliseconds).
RETIRE_GRACE = 60.0
# Candidates HNSW explores per query. Chroma's default (100) found only 97% of the exact 40
# nearest chunks on the workspace index (as few as 30 of 40 for some questions), and the
# approximation cost two dev questions their top-5 hit; 500 finds 99.9% for about 1 ms more.
HNSW_EF_SEARCH = 500
HNSW = {"space": "cosine", "ef_search": HNSW_EF_SEARCH}
# Chroma keeps every write in its log until the collection's index is next saved, every
# `sync_threshold` writes (1,000 by default). The meta collection takes a few writes per
# build, one of them the 0.8 MB query adapter, so its log grew by that much per build (watch
# mode: per save); saved every few writes, the log is purged as it goes.
META_HNSW = {**HNSW, "sync_threshold": 10, "batch_size": 10}


@contextlib.contextmanager
def chroma_errors(
    action: str, url: str | None = None, folder: Path | None = None
) -> Iterator[None]:
    """Turn any Chroma failure into one StoreError line; for an embedded store in `folder`,
    one that says whether its files are damaged or only unreadable (`health.diagnose`)."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        text = one_line(exc)
        if url and ("connect" in text.lower() or isinstance(exc, ConnectionError)):
            raise StoreError(
                f"cannot reach the Chroma server at {url}: is `chroma run` up?"
            ) from exc
        if folder is not None:
            raise diagnose(folder, action, exc) from exc
        raise StoreError(f"Chroma failed to {action}: {text}") from exc
    except BaseException as exc:  # a Rust panic inside chromadb (pyo3's PanicException)
        if type(exc).__name__ != "PanicException":
            raise
        raise StoreError(f"Chroma failed to {action} (it panicked: {one_line(exc)})") from exc


def _is_missing(exc: BaseException | None) -> bool:
    """Whether Chroma said a collection does not exist (by name, or by the id of a handle)."""
    from chromadb.errors import NotFoundError

    return isinstance(exc, NotFoundError) or "does not exist" in str(exc)


def _is_missing_record(exc: BaseException | None) -> bool:
    """Whether Chroma failed a read because one of the ids it was given has no vector."""
    return "Error finding id" in str(exc)


class ChromaStore:
    """Chroma on a persistent (embedded) or HTTP (server) client."""

    def __init__(
        self,
        *,
        index_dir: Path,
        url: str | None = None,
        prefix: str = "bekb",
        timeout: float = HTTP_TIMEOUT,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.index_dir = index_dir
        # Resolved: one folder reached by two spellings (a symlink, a relative path) must
        # share one client; two would corrupt each other's view of it.
        self.folder = None if url else (index_dir / "chroma").resolve()
        with chroma_errors("open the store", url):
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            if url:
                from urllib.parse import urlparse

                parsed = urlparse(url)
                if parsed.scheme not in ("http", "https") or not parsed.hostname:
                    raise StoreError(f"invalid Chroma URL {url!r}: expected http://host:port")
                _answers_within(url, timeout)
                self._client: Any = chromadb.HttpClient(
                    host=parsed.hostname,
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=chroma_settings,
                )
                _bound_http_timeout(self._client, timeout)
                self._client.heartbeat()
            else:
                assert self.folder is not None
                self._client = _persistent_client(self.folder, chroma_settings)
        self._cache: dict[str, Any] = {}

    def close(self) -> None:
        """Let go of an embedded store's files (before they are moved aside).

        chromadb keeps one client per folder for the whole process; it is dropped here so
        that the next store opened on this folder starts afresh.
        """
        if self.folder is None:
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        system = SharedSystemClient._identifier_to_system.pop(str(self.folder), None)
        SharedSystemClient._identifier_to_refcount.pop(str(self.folder), None)
        if system is not None:
            with contextlib.suppress(Exception):
                system.stop()
        self._cache.clear()

    def problem(self) -> str | None:
        """What is wrong with an embedded store's files (damage, permissions), else None."""
        if self.folder is None:
            return None
        return access_problem(self.folder) or (
            f"damaged: {damage}" if (damage := sqlite_problem(self.folder)) else None
        )

    @property
    def mode(self) -> Literal["embedded", "server"]:
        """`server` when talking to a Chroma server, else `embedded`."""
        return "server" if self.url else "embedded"

    # -- collections ---------------------------------------------------------------------

    def _collection(self, name: str, *, create: bool = True) -> Any:
        if name in self._cache:
            return self._cache[name]
        with chroma_errors(f"open collection {name}", self.url, self.folder):
            meta = name == self._meta_name
            if create:
                collection = self._client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    configuration={"hnsw": META_HNSW if meta else HNSW},
                )
            else:
                try:
                    collection = self._client.get_collection(name, embedding_function=None)
                except Exception as exc:
                    if _is_missing(exc):
                        return None
                    raise
            if meta:
                _purge_often(collection)  # one made before META_HNSW
        self._cache[name] = collection
        return collection

    def _use(
        self,
        name: str,
        action: str,
        op: Callable[[Any], _T],
        *,
        create: bool = True,
        missing: _T,
    ) -> _T:
        """`op(collection)` with Chroma errors mapped; `missing` when the collection is absent.

        A cached handle goes stale when another client (process or machine) drops the
        collection and creates one of the same name, as alternating rebuilds do: Chroma then
        answers "does not exist" for the old id, so the name is resolved again, once.
        """
        cached = name in self._cache
        collection = self._collection(name, create=create)
        if collection is None:
            return missing
        try:
            with chroma_errors(action, self.url, self.folder):
                return op(collection)
        except StoreError as exc:
            if not (cached and _is_missing(exc.__cause__)):
                raise
        self._cache.pop(name, None)
        collection = self._collection(name, create=create)
        if collection is None:
            return missing
        with chroma_errors(action, self.url, self.folder):
            return op(collection)

    @property
    def _meta_name(self) -> str:
        return f"{self.prefix}-meta"

    def _chunks_name(self, key: str) -> str:
        return f"{self.prefix}-chunks-{key}"

    def _files_name(self, key: str) -> str:
        return f"{self.prefix}-files-{key}"

    # -- meta records: the active pointer and the query adapters ---------------------------

    @property
    def meta(self) -> MetaRecords:
        """The `<prefix>-meta` collection: small records by id (pointer, adapters, lease)."""
        return MetaRecords(self)

    def active(self) -> IndexMeta | None:
        """The committed index, or None before the first build."""
        data = self.meta.get(ACTIVE, "read the index pointer")
        if data is None:
            return None
        try:
            return IndexMeta(**{f.name: data[f.name] for f in fields(IndexMeta)})
        except KeyError:
            return None

    def set_active(self, meta: IndexMeta) -> None:
        """Make `meta` the committed index."""
        self.meta.put(ACTIVE, asdict(meta), "write the index pointer")
        self._purge_retired()

    # Query adapters are kept in the store, not beside the index: every reader of a shared
    # Chroma server must search with the adapter the writer fitted. In metadata, not as the
    # document: Chroma full-text indexes documents, which made one write take a second.

    def put_adapter(self, key: str, generation: int, data: bytes) -> None:
        """Store the query adapter of one generation of index `key` (before committing it)."""
        record = {
            "kind": "adapter",
            "key": key,
            "generation": generation,
            "data": base64.b64encode(data).decode("ascii"),
        }
        self.meta.put(_adapter_id(key, generation), record, "write the query adapter")

    def adapter(self, key: str, generation: int) -> bytes | None:
        """The stored query adapter of one generation, or None when it has none."""
        data = self.meta.get(_adapter_id(key, generation), "read the query adapter")
        if data is None:
            return None
        try:
            return base64.b64decode(str(data["data"]), validate=True)
        except (KeyError, ValueError):
            return None  # damaged: as good as none, and the next `bekb index` refits it

    def keep_adapters(self, keep: Collection[tuple[str, int]]) -> None:
        """Delete every stored query adapter but those of the (key, generation) pairs given."""
        wanted = {_adapter_id(key, generation) for key, generation in keep}
        stale = [i for i in self.meta.ids({"kind": "adapter"}) if i not in wanted]
        self.meta.delete(stale, "delete old query adapters")

    @contextlib.contextmanager
    def writer_lease(
        self, timeout: float, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[None]:
        """Hold the server-wide write lease (see `bekb.store.lease`); embedded: nothing to do.

        `on_wait(message)` is told once if another writer holds it.
        """
        if self.mode == "embedded":
            yield
            return
        from bekb.store.lease import LEASE_TTL, WriterLease

        told: list[str] = []

        def waiting(holder: str, _left: float) -> None:
            if on_wait is not None and not told:
                told.append(holder)
                on_wait(
                    f"waiting for the write lease of {self.url}, held by {holder} (a writer "
                    f"that stopped renewing it loses it after {LEASE_TTL:g}s)"
                )

        with WriterLease(self.meta, where=self.url or "", timeout=timeout, on_wait=waiting):
            yield

    def collection_keys(self) -> list[str]:
        """Collection suffixes of every index this prefix has in the store (active or not,
        whole or half built)."""
        heads = (f"{self.prefix}-files-", f"{self.prefix}-chunks-")
        return sorted({n[len(h) :] for n in self._names() for h in heads if n.startswith(h)})

    def drop(self, key: str) -> None:
        """Retire an index's collections: their names are free at once, their data goes later.

        A reader in another process may have read the active pointer just before a rebuild
        moved it and still be searching the old index; renaming keeps that search working
        (handles address collections by id), and the data is deleted `RETIRE_GRACE` seconds
        later by a later commit or drop.
        """
        retired = f"{self.prefix}-retired-{int(time.time() * 1000)}-"
        for name in (self._chunks_name(key), self._files_name(key)):
            self._cache.pop(name, None)
            # Already gone is fine: dropping is how leftovers are tidied.
            with contextlib.suppress(Exception):
                collection = self._client.get_collection(name, embedding_function=None)
                collection.modify(name=retired + name[len(self.prefix) + 1 :])
        self._purge_retired()

    def _purge_retired(self) -> None:
        """Delete retired collections past their grace (best effort: tidying, not work)."""
        head = f"{self.prefix}-retired-"
        deadline_ms = (time.time() - RETIRE_GRACE) * 1000
        with contextlib.suppress(StoreError):
            for name in self._names():
                stamp = name[len(head) :].split("-", 1)[0]
                if name.startswith(head) and stamp.isdigit() and int(stamp) < deadline_ms:
                    # Another client may be purging the same one: gone is fine.
                    with contextlib.suppress(Exception):
                        self._client.delete_collection(name)

    def _names(self) -> list[str]:
        with chroma_errors("list collections", self.url, self.folder):
            return [c if isinstance(c, str) else c.name for c in self._client.list_collections()]

    # -- the file registry -----------------------------------------------------------------

    def files(self, key: str) -> dict[str, FileRecord]:
        """Every committed file of an index, by path."""
        got = self._use(
            self._files_name(key),
            "read the file registry",
            lambda files: files.get(include=["metadatas", "documents"]),
            create=False,
            missing=None,
        )
        if got is None:
            return {}
        records = {}
        for path, data, doc in zip(got["ids"], got["metadatas"], got["documents"], strict=True):
            records[path] = FileRecord(
                path=path,
                sha256=str(data["sha256"]),
                size=int(data["size"]),
                mtime_ns=int(data["mtime_ns"]),
                chunk_ids=tuple(json.loads(doc or "[]")),
            )
        return records

    def put_files(self, key: str, records: Sequence[FileRecord]) -> None:
        """Commit files: from now on their chunk lists are the live ones."""
        if not records:
            return
        for batch in _batches(list(records), self._batch_size()):
            self._use(
                self._files_name(key),
                "commit files",
                functools.partial(
                    _upsert,
                    ids=[r.path for r in batch],
                    embeddings=[_UNIT] * len(batch),
                    documents=[json.dumps(list(r.chunk_ids)) for r in batch],
                    metadatas=[
                        {"sha256": r.sha256, "size": r.size, "mtime_ns": r.mtime_ns} for r in batch
                    ],
                ),
                missing=None,
            )

    def delete_files(self, key: str, paths: Sequence[str]) -> None:
        """Forget files (their chunks go separately)."""
        if paths:
            self._use(
                self._files_name(key),
                "remove files",
                functools.partial(_delete, ids=list(paths)),
                missing=None,
            )

    # -- chunks -----------------------------------------------------------------------------

    def put_chunks(
        self, key: str, chunks: Sequence[Chunk], vectors: Vectors, written_at: float
    ) -> None:
        """Write chunks with their vectors (not yet live until their file is committed)."""
        if not chunks:
            return
        size = self._batch_size()
        for start in range(0, len(chunks), size):
            batch = chunks[start : start + size]
            self._use(
                self._chunks_name(key),
                "write chunks",
                functools.partial(
                    _upsert,
                    ids=[c.id for c in batch],
                    embeddings=vectors[start : start + size],
                    documents=[c.text for c in batch],
                    metadatas=[_chunk_metadata(c, written_at) for c in batch],
                ),
                missing=None,
            )

    def delete_chunks(self, key: str, ids: Sequence[str]) -> None:
        """Remove chunks by id."""
        for batch in _batches(list(ids), self._batch_size()):
            self._use(
                self._chunks_name(key),
                "delete chunks",
                functools.partial(_delete, ids=batch),
                missing=None,
            )

    def widen_search(self, key: str) -> None:
        """Give an index built with Chroma's default HNSW search breadth `HNSW_EF_SEARCH`."""

        def widen(collection: Any) -> None:
            hnsw = (collection.configuration_json or {}).get("hnsw") or {}
            if hnsw.get("ef_search", HNSW_EF_SEARCH) < HNSW_EF_SEARCH:
                collection.modify(configuration={"hnsw": {"ef_search": HNSW_EF_SEARCH}})

        self._use(self._chunks_name(key), "configure search", widen, create=False, missing=None)

    def chunk_ages(self, key: str) -> dict[str, float]:
        """Every chunk id in the store with the time it was written."""
        got = self._read(self._chunks_name(key), "list chunks", ["metadatas"], None)
        if got is None:
            return {}
        return {
            i: float(m.get("written_at", 0.0))
            for i, m in zip(got["ids"], got["metadatas"], strict=True)
        }

    def get_chunks(self, key: str, ids: Sequence[str] | None = None) -> list[Chunk]:
        """Chunks by id (all of them when `ids` is None), in no particular order."""
        if ids is not None and not ids:
            return []
        got = self._read(self._chunks_name(key), "read chunks", ["metadatas", "documents"], ids)
        if got is None:
            return []
        return [
            _chunk_from(i, d, m)
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        ]

    def _read(
        self, name: str, action: str, include: list[str], ids: Sequence[str] | None
    ) -> dict[str, list[Any]] | None:
        """`collection.get` in pages: Chroma's SQLite refuses one read of more than ~32k
        records, which an index past ~2.5x the workspace reaches."""
        fields_ = ["ids", *include]
        out: dict[str, list[Any]] = {f: [] for f in fields_}

        def add(got: dict[str, Any] | None) -> int:
            if got is None:
                return -1
            for f in fields_:
                out[f].extend(got[f])
            return len(got["ids"])

        def page(**where: Any) -> int:
            return add(
                self._use(
                    name,
                    action,
                    functools.partial(_get, include=include, **where),
                    create=False,
                    missing=None,
                )
            )

        if ids is not None:
            for start in range(0, len(ids), READ_BATCH):
                if page(ids=list(ids[start : start + READ_BATCH])) < 0:
                    return None
            return out
        offset = 0
        while True:
            n = page(limit=READ_BATCH, offset=offset)
            if n < 0:
                return None if offset == 0 else out
            if n < READ_BATCH:
                return out
            offset += n

    def count(self, key: str) -> int:
        """Number of chunk records (live or not)."""
        return int(
            self._use(
                self._chunks_name(key),
                "count chunks",
                lambda collection: collection.count(),
                create=False,
                missing=0,
            )
        )

    def query(
        self,
        key: str,
        vector: Vectors,
        n: int,
        *,
        paths: Collection[str] | None = None,
        outside: bool = False,
    ) -> list[tuple[str, float]]:
        """Nearest chunk ids to `vector` (a 1-row matrix) with cosine similarity, best first;
        with `paths`, only chunks of those files (with `outside`: of every other file)."""
        # Chroma filters before it ranks, so n chunks of those files come back when they exist.
        extra: dict[str, Any] = {}
        if paths is not None:
            extra["where"] = {"path": {"$nin" if outside else "$in": sorted(paths)}}
        # No count() first: Chroma returns fewer than n (or none) by itself, and in server
        # mode every call is a round trip.
        got = self._use(
            self._chunks_name(key),
            "search",
            lambda collection: collection.query(
                query_embeddings=vector, n_results=n, include=["distances"], **extra
            ),
            create=False,
            missing=None,
        )
        if got is None:
            return []
        return [
            (i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0], strict=True)
        ]

    def similarities(self, key: str, vector: Vectors, ids: Sequence[str]) -> dict[str, float]:
        """Cosine similarity of `vector` (a 1-row matrix) to each stored chunk in `ids`
        whose vector can be read (see `readable_vectors`)."""
        return cosine_similarities(vector, self.readable_vectors(key, ids))

    def readable_vectors(self, key: str, ids: Sequence[str]) -> dict[str, Any]:
        """The stored vector of each chunk in `ids` that has one.

        Chunks whose vector cannot be read are left out: deleted by a writer since the
        caller listed them, or (after a killed build) in Chroma's records but not yet in its
        vector segment.
        """
        try:
            return self.vectors(key, ids)
        except StoreError as exc:
            if not _is_missing_record(exc.__cause__):
                raise
        # Chroma fails the whole read for one such id: read the ids one by one.
        stored: dict[str, Any] = {}
        for one in ids:
            try:
                stored.update(self.vectors(key, [one]))
            except StoreError as again:
                if not _is_missing_record(again.__cause__):
                    raise
        return stored

    def vectors(self, key: str, ids: Sequence[str]) -> dict[str, Any]:
        """The stored vector of each chunk in `ids`, by chunk id. Chroma fails the whole read
        when one of them has no vector (see `similarities`)."""
        got = (
            self._read(self._chunks_name(key), "read vectors", ["embeddings"], ids) if ids else None
        )
        return dict(zip(got["ids"], got["embeddings"], strict=True)) if got else {}

    def chunk_reader(self, key: str) -> Callable[[str], list[Chunk]]:
        """A function giving the committed chunks of one file of index `key` (in no order;
        none for a file not indexed); the registry is read once, on first use."""
        records: dict[str, FileRecord] = {}

        def chunks_of(path: str) -> list[Chunk]:
            if not records:
                records.update(self.files(key))
            record = records.get(path)
            return self.get_chunks(key, record.chunk_ids) if record else []

        return chunks_of

    def _batch_size(self) -> int:
        with contextlib.suppress(Exception):
            return max(1, min(4000, int(self._client.get_max_batch_size())))
        return 1000


class MetaRecords:
    """Small records by id in the `<prefix>-meta` collection (metadata only, never searched)."""

    def __init__(self, store: ChromaStore) -> None:
        self._store = store
        self._name = store._meta_name

    def get(self, record_id: str, action: str) -> dict[str, Any] | None:
        """The record's metadata, or None when there is no such record (or no collection)."""
        got = self._store._use(
            self._name,
            action,
            lambda c: c.get(ids=[record_id], include=["metadatas"]),
            create=False,
            missing=None,
        )
        if not got or not got["ids"]:
            return None
        return dict(got["metadatas"][0] or {})

    def put(self, record_id: str, metadata: dict[str, Any], action: str) -> None:
        """Create or replace a record."""
        self._op(
            action,
            lambda c: c.upsert(
                ids=[record_id], embeddings=[_UNIT], metadatas=[metadata], documents=[record_id]
            ),
        )

    def ids(self, where: dict[str, Any]) -> list[str]:
        """Ids of the records whose metadata matches `where`."""
        got = self._op("list meta records", lambda c: c.get(where=where, include=[]))
        return list(got["ids"]) if got else []

    def delete(self, record_ids: Sequence[str], action: str) -> None:
        """Delete records (absent ones are no error)."""
        if record_ids:
            self._op(action, lambda c: c.delete(ids=list(record_ids)))

    def _op(self, action: str, op: Callable[[Any], _T]) -> _T:
        return self._store._use(self._name, action, op, missing=cast(_T, None))


def _purge_often(collection: Any) -> None:
    """Give `collection` META_HNSW's sync threshold if it has a larger one."""
    hnsw = (collection.configuration_json or {}).get("hnsw") or {}
    if hnsw.get("sync_threshold", 1000) > META_HNSW["sync_threshold"]:
        keys = ("sync_threshold", "batch_size")
        collection.modify(configuration={"hnsw": {k: META_HNSW[k] for k in keys}})


def _adapter_id(key: str, generation: int) -> str:
    return f"adapter:{key}:{generation}"


def _get(collection: Any, **arguments: Any) -> Any:
    return collection.get(**arguments)


def _persistent_client(folder: Path, settings: Any) -> Any:
    """The embedded client; a store too damaged to open names the fix in its error."""
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient

    try:
        return chromadb.PersistentClient(path=str(folder), settings=settings)
    except Exception as exc:
        # chromadb caches the half-started client of this path; a retry would then hide the
        # cause behind an unrelated AttributeError.
        SharedSystemClient._identifier_to_system.pop(str(folder), None)
        SharedSystemClient._identifier_to_refcount.pop(str(folder), None)
        blocked = access_problem(folder) or access_problem(folder.parent)
        if blocked is not None:
            raise StoreError(f"cannot open the index store: {blocked}") from exc
        raise StoreError(
            f"the index store {folder} is damaged ({one_line(exc, 160)}): "
            "run `bekb index` to rebuild it",
            damaged=True,
        ) from exc


def open_store(
    index_dir: Path,
    url: str | None,
    *,
    timeout: float = HTTP_TIMEOUT,
    replace_damaged: bool = False,
) -> ChromaStore:
    """The store of an index: the server at `url`, or the embedded one under `index_dir`.

    With `replace_damaged` (a writer, under the write lock), an embedded store too damaged to
    open is set aside (kept for inspection) and a fresh one made: cached embeddings make the
    rebuild cheap.
    """
    try:
        return ChromaStore(index_dir=index_dir, url=url, timeout=timeout)
    except StoreError as exc:
        folder = index_dir / "chroma"
        if not (replace_damaged and exc.damaged) or url or not folder.exists():
            raise
        set_aside(folder)
        return ChromaStore(index_dir=index_dir, url=url, timeout=timeout)


def _answers_within(url: str, seconds: float) -> None:
    """Raise StoreError unless a server at `url` answers HTTP within `seconds`.

    chromadb's client makes its first request while it is being built, with no timeout at
    all (its own session is made with `timeout=None`), so a server that accepts the
    connection and never answers would hang the caller for good: ask it first ourselves.
    """
    import httpx

    try:
        httpx.get(f"{url.rstrip('/')}/api/v2/heartbeat", timeout=seconds)
    except httpx.TimeoutException as exc:
        raise StoreError(
            f"the Chroma server at {url} did not answer within {seconds:g}s "
            "(is it overloaded or stuck? raise chroma_timeout to wait longer)"
        ) from exc
    except httpx.HTTPError as exc:
        raise StoreError(f"cannot reach the Chroma server at {url}: is `chroma run` up?") from exc


def _bound_http_timeout(client: Any, seconds: float) -> None:
    """Give the HTTP client a timeout: chromadb's has none, so a hung server blocks forever.

    chromadb exposes no setting for it; its httpx session is reached through private
    attributes, so a chromadb that moves them simply keeps its own behaviour.
    """
    import httpx

    with contextlib.suppress(AttributeError):
        client._server._session.timeout = httpx.Timeout(seconds)


def _chunk_metadata(chunk: Chunk, written_at: float) -> dict[str, Any]:
    return {
        "path": chunk.path,
        "ordinal": chunk.ordinal,
        "heading": chunk.heading,
        "label": chunk.label,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "kind": chunk.kind,
        "context": chunk.context,
        "file_sha256": chunk.file_sha256,
        "written_at": written_at,
    }


def _chunk_from(chunk_id: str, text: str | None, data: dict[str, Any]) -> Chunk:
    return Chunk(
        id=chunk_id,
        path=str(data["path"]),
        ordinal=int(data["ordinal"]),
        heading=str(data.get("heading", "")),
        start_line=int(data["start_line"]),
        end_line=int(data["end_line"]),
        kind=data.get("kind", "prose"),
        text=text or "",
        context=str(data.get("context", "")),
        file_sha256=str(data.get("file_sha256", "")),
        label=str(data.get("label", "")),
    )


def _upsert(collection: Any, **rows: Any) -> None:
    collection.upsert(**rows)


def _delete(collection: Any, *, ids: list[str]) -> None:
    collection.delete(ids=ids)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def cosine_similarities(vector: Vectors, stored: Mapping[str, Any]) -> dict[str, float]:
    """Cosine similarity of `vector` (a 1-row matrix) to each of the `stored` vectors."""
    import numpy as np

    if not stored:
        return {}
    matrix = np.asarray(list(stored.values()), dtype=np.float32)
    query = np.asarray(vector, dtype=np.float32)[0]
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(query))
    sims = matrix @ query / np.where(norms > 0, norms, 1.0)
    return {i: float(sim) for i, sim in zip(stored, sims, strict=True)}
