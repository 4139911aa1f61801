"""ChromaStore: chunks, the file registry and the active-index pointer, all kept in Chroma.

The index state lives in Chroma itself (not in a side file) so that an embedded store and a
shared `chroma run` server behave the same, and two machines on one server see one truth.
Three collections per knowledge base (prefix `bekb`):
`bekb-meta` (one record: which index is active), `bekb-chunks-<fp>` (vectors, text and
citation metadata) and `bekb-files-<fp>` (one record per file: hash and chunk ids; writing it
is the commit point of that file). `<fp>` fingerprints the model and chunker settings, so a
different model builds beside the old index and never mixes with it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bekb.domain import Chunk
from bekb.errors import StoreError

if TYPE_CHECKING:
    from bekb.embedding import Vectors

ACTIVE = "active"
_UNIT = [1.0]  # registry records need an embedding; they are never searched by vector


@dataclass(frozen=True)
class IndexMeta:
    """The active index: what built it, and its generation (bumped by every commit)."""

    fingerprint: str  # of the model and chunker settings
    collection: str  # suffix of this index's collections (a --full rebuild gets a new one)
    embed_model: str
    model_fingerprint: str
    dimensions: int
    chunker_version: str
    chunk_tokens: int
    generation: int
    built_at: str
    build_seconds: float
    agent_files: str  # JSON list
    unresolved: str  # JSON list


@dataclass(frozen=True)
class FileRecord:
    """A committed file: its hash and stat at indexing time, and its chunk ids in order."""

    path: str
    sha256: str
    size: int
    mtime_ns: int
    chunk_ids: tuple[str, ...]


@contextlib.contextmanager
def chroma_errors(action: str, url: str | None = None) -> Iterator[None]:
    """Turn any Chroma failure into one StoreError line."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if url and ("connect" in text.lower() or isinstance(exc, ConnectionError)):
            raise StoreError(
                f"cannot reach the Chroma server at {url}: is `chroma run` up?"
            ) from exc
        raise StoreError(f"Chroma failed to {action}: {text[:300]}") from exc


class ChromaStore:
    """Chroma on a persistent (embedded) or HTTP (server) client."""

    def __init__(self, *, index_dir: Path, url: str | None = None, prefix: str = "bekb") -> None:
        self.url = url
        self.prefix = prefix
        self.index_dir = index_dir
        with chroma_errors("open the store", url):
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            if url:
                from urllib.parse import urlparse

                parsed = urlparse(url)
                if parsed.scheme not in ("http", "https") or not parsed.hostname:
                    raise StoreError(f"invalid Chroma URL {url!r}: expected http://host:port")
                self._client: Any = chromadb.HttpClient(
                    host=parsed.hostname,
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=chroma_settings,
                )
                self._client.heartbeat()
            else:
                self._client = chromadb.PersistentClient(
                    path=str(index_dir / "chroma"), settings=chroma_settings
                )
        self._cache: dict[str, Any] = {}

    @property
    def mode(self) -> Literal["embedded", "server"]:
        """`server` when talking to a Chroma server, else `embedded`."""
        return "server" if self.url else "embedded"

    # -- collections ---------------------------------------------------------------------

    def _collection(self, name: str, *, create: bool = True) -> Any:
        if name in self._cache:
            return self._cache[name]
        with chroma_errors(f"open collection {name}", self.url):
            if create:
                collection = self._client.get_or_create_collection(
                    name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
                )
            else:
                try:
                    collection = self._client.get_collection(name, embedding_function=None)
                except Exception as exc:
                    if "does not exist" in str(exc):
                        return None
                    raise
        self._cache[name] = collection
        return collection

    def _chunks(self, key: str, create: bool = True) -> Any:
        return self._collection(f"{self.prefix}-chunks-{key}", create=create)

    def _files(self, key: str, create: bool = True) -> Any:
        return self._collection(f"{self.prefix}-files-{key}", create=create)

    # -- the active pointer --------------------------------------------------------------

    def active(self) -> IndexMeta | None:
        """The committed index, or None before the first build."""
        meta = self._collection(f"{self.prefix}-meta", create=False)
        if meta is None:
            return None
        with chroma_errors("read the index pointer", self.url):
            got = meta.get(ids=[ACTIVE], include=["metadatas"])
        if not got["ids"]:
            return None
        data = got["metadatas"][0]
        try:
            return IndexMeta(**{f.name: data[f.name] for f in fields(IndexMeta)})
        except KeyError:
            return None

    def set_active(self, meta: IndexMeta) -> None:
        """Make `meta` the committed index."""
        collection = self._collection(f"{self.prefix}-meta")
        with chroma_errors("write the index pointer", self.url):
            collection.upsert(
                ids=[ACTIVE], embeddings=[_UNIT], metadatas=[asdict(meta)], documents=[ACTIVE]
            )

    def collection_keys(self) -> list[str]:
        """Collection suffixes of every index this prefix has in the store (active or not)."""
        with chroma_errors("list collections", self.url):
            names = [c if isinstance(c, str) else c.name for c in self._client.list_collections()]
        head = f"{self.prefix}-files-"
        return sorted(n[len(head) :] for n in names if n.startswith(head))

    def drop(self, key: str) -> None:
        """Delete an index's collections."""
        for name in (f"{self.prefix}-chunks-{key}", f"{self.prefix}-files-{key}"):
            self._cache.pop(name, None)
            # Already gone is fine: dropping is how leftovers are tidied.
            with contextlib.suppress(Exception):
                self._client.delete_collection(name)

    # -- the file registry -----------------------------------------------------------------

    def files(self, key: str) -> dict[str, FileRecord]:
        """Every committed file of an index, by path."""
        collection = self._files(key, create=False)
        if collection is None:
            return {}
        with chroma_errors("read the file registry", self.url):
            got = collection.get(include=["metadatas", "documents"])
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
        collection = self._files(key)
        with chroma_errors("commit files", self.url):
            for batch in _batches(list(records), self._batch_size()):
                collection.upsert(
                    ids=[r.path for r in batch],
                    embeddings=[_UNIT] * len(batch),
                    documents=[json.dumps(list(r.chunk_ids)) for r in batch],
                    metadatas=[
                        {"sha256": r.sha256, "size": r.size, "mtime_ns": r.mtime_ns} for r in batch
                    ],
                )

    def delete_files(self, key: str, paths: Sequence[str]) -> None:
        """Forget files (their chunks go separately)."""
        if paths:
            with chroma_errors("remove files", self.url):
                self._files(key).delete(ids=list(paths))

    # -- chunks -----------------------------------------------------------------------------

    def put_chunks(
        self, key: str, chunks: Sequence[Chunk], vectors: Vectors, written_at: float
    ) -> None:
        """Write chunks with their vectors (not yet live until their file is committed)."""
        if not chunks:
            return
        collection = self._chunks(key)
        size = self._batch_size()
        with chroma_errors("write chunks", self.url):
            for start in range(0, len(chunks), size):
                batch = chunks[start : start + size]
                collection.upsert(
                    ids=[c.id for c in batch],
                    embeddings=vectors[start : start + size],
                    documents=[c.text for c in batch],
                    metadatas=[_chunk_metadata(c, written_at) for c in batch],
                )

    def delete_chunks(self, key: str, ids: Sequence[str]) -> None:
        """Remove chunks by id."""
        collection = self._chunks(key)
        with chroma_errors("delete chunks", self.url):
            for batch in _batches(list(ids), self._batch_size()):
                collection.delete(ids=batch)

    def chunk_ages(self, key: str) -> dict[str, float]:
        """Every chunk id in the store with the time it was written."""
        collection = self._chunks(key, create=False)
        if collection is None:
            return {}
        with chroma_errors("list chunks", self.url):
            got = collection.get(include=["metadatas"])
        return {
            i: float(m.get("written_at", 0.0))
            for i, m in zip(got["ids"], got["metadatas"], strict=True)
        }

    def get_chunks(self, key: str, ids: Sequence[str] | None = None) -> list[Chunk]:
        """Chunks by id (all of them when `ids` is None), in no particular order."""
        collection = self._chunks(key, create=False)
        if collection is None or (ids is not None and not ids):
            return []
        with chroma_errors("read chunks", self.url):
            got = collection.get(
                ids=list(ids) if ids is not None else None, include=["metadatas", "documents"]
            )
        return [
            _chunk_from(i, d, m)
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        ]

    def count(self, key: str) -> int:
        """Number of chunk records (live or not)."""
        collection = self._chunks(key, create=False)
        if collection is None:
            return 0
        with chroma_errors("count chunks", self.url):
            return int(collection.count())

    def query(self, key: str, vector: Vectors, n: int) -> list[tuple[str, float]]:
        """Nearest chunk ids to `vector` (a 1-row matrix) with cosine similarity, best first."""
        collection = self._chunks(key, create=False)
        if collection is None:
            return []
        with chroma_errors("search", self.url):
            total = collection.count()
            if total == 0:
                return []
            got = collection.query(
                query_embeddings=vector, n_results=min(n, total), include=["distances"]
            )
        return [
            (i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0], strict=True)
        ]

    def _batch_size(self) -> int:
        with contextlib.suppress(Exception):
            return max(1, min(4000, int(self._client.get_max_batch_size())))
        return 1000


def _chunk_metadata(chunk: Chunk, written_at: float) -> dict[str, Any]:
    return {
        "path": chunk.path,
        "ordinal": chunk.ordinal,
        "heading": chunk.heading,
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
    )


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
