"""The store: Chroma (embedded under the index dir, or a `chroma run` server) holds it all.

- `chroma`: ChromaStore, chunks with their vectors, the file registry, meta records;
- `lease`: the writer lease that keeps one writer at a time on a shared server;
- `health`: telling a damaged embedded store from an unreadable one.
"""

from bekb.store.chroma import (
    HNSW_EF_SEARCH,
    ChromaStore,
    chroma_errors,
    cosine_similarities,
    open_store,
)
from bekb.store.health import set_aside

__all__ = [
    "HNSW_EF_SEARCH",
    "ChromaStore",
    "chroma_errors",
    "cosine_similarities",
    "open_store",
    "set_aside",
]
