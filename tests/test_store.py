"""ChromaStore, embedded and against a real `chroma run` server: round trips, shared state, outages.

Run as a script, this module is the "other machine" of the server tests: it opens the knowledge
base on the server with its own (empty) index dir and prints search results as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import chroma_server as servers
import numpy as np
import pytest
from chroma_server import ChromaServer, free_port
from conftest import TINY_AGENT, HashingEmbedder, assert_consistent, store_state

from bekb import IndexLockedError, KnowledgeBase, Settings, StoreError
from bekb.domain import Chunk, FileRecord, IndexMeta
from bekb.store import ChromaStore

# The server fixtures, registered for this module.
chroma_server = servers.chroma_server
chroma_url = servers.chroma_url

QUERIES = ("saga compensation", "cache invalidation", "token expiry", "def handler")
TINY_FILES = [
    "alpha/skills/caching/SKILL.md",
    "alpha/skills/sagas/SKILL.md",
    "alpha/skills/sagas/references/details.md",
    "beta/docs/auth.md",
    "beta/src/server.py",
]


def chunk(n: int, path: str = "a.md", **changes: object) -> Chunk:
    base = Chunk(
        id=f"{path}#{n}",
        path=path,
        ordinal=n,
        heading=f"Title > Part {n}",
        start_line=10 * n + 1,
        end_line=10 * n + 9,
        kind="prose",
        text=f"text of part {n}\n",
        context=f"Title > Part {n}",
        file_sha256="f" * 64,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


META = IndexMeta(
    fingerprint="fp1",
    collection="fp1",
    embed_model="test/model",
    model_fingerprint="m1",
    dimensions=3,
    chunker_version="4",
    chunk_tokens=256,
    generation=1,
    built_at="2026-01-01T00:00:00+00:00",
    build_seconds=1.5,
    agent_files='["a.md"]',
    unresolved="[]",
)


@pytest.fixture
def store(tmp_path: Path) -> ChromaStore:
    return ChromaStore(index_dir=tmp_path / "index")


# -- embedded store ----------------------------------------------------------------------------


def test_active_is_none_before_the_first_commit(store):
    assert store.active() is None
    assert store.files("fp1") == {}
    assert store.get_chunks("fp1") == []
    assert store.query("fp1", unit(1, 0, 0)[None, :], 5) == []
    assert store.mode == "embedded"


def test_set_active_round_trips_the_whole_index_meta(store):
    store.set_active(META)
    assert store.active() == META
    store.set_active(replace(META, generation=2, collection="fp1-2"))
    assert store.active() == replace(META, generation=2, collection="fp1-2")


def test_put_chunks_then_get_chunks_returns_every_field(store):
    chunks = [
        chunk(0),
        chunk(1, kind="code", heading="", context=""),
        chunk(0, path="b.py", label="Title"),
    ]
    vectors = np.vstack([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)])

    store.put_chunks("fp1", chunks, vectors, written_at=123.5)

    assert sorted(store.get_chunks("fp1"), key=lambda c: c.id) == sorted(chunks, key=lambda c: c.id)
    assert store.get_chunks("fp1", ["a.md#1"]) == [chunks[1]]
    assert store.get_chunks("fp1", []) == []
    assert store.chunk_ages("fp1") == {"a.md#0": 123.5, "a.md#1": 123.5, "b.py#0": 123.5}
    assert store.count("fp1") == 3


def test_query_returns_nearest_ids_with_cosine_similarity_best_first(store):
    chunks = [chunk(0), chunk(1), chunk(2)]
    store.put_chunks("fp1", chunks, np.vstack([unit(1, 0, 0), unit(1, 1, 0), unit(0, 0, 1)]), 1.0)

    got = store.query("fp1", unit(1, 0, 0)[None, :], 10)

    assert [cid for cid, _ in got] == ["a.md#0", "a.md#1", "a.md#2"]
    assert [round(sim, 4) for _, sim in got] == [1.0, 0.7071, 0.0]
    assert [cid for cid, _ in store.query("fp1", unit(0, 0, 1)[None, :], 1)] == ["a.md#2"]


def test_similarities_scores_stored_chunks_by_id_whatever_their_rank(store):
    chunks = [chunk(0), chunk(1), chunk(2)]
    store.put_chunks("fp1", chunks, np.vstack([unit(1, 0, 0), unit(1, 1, 0), unit(0, 0, 1)]), 1.0)

    got = store.similarities("fp1", unit(1, 0, 0)[None, :], ["a.md#2", "a.md#1", "gone"])

    assert got == {"a.md#1": pytest.approx(0.7071, abs=1e-4), "a.md#2": pytest.approx(0.0)}
    assert store.similarities("fp1", unit(1, 0, 0)[None, :], []) == {}


def test_similarities_leave_out_a_chunk_whose_vector_chroma_cannot_find(store, monkeypatch):
    # After a killed build (or during a concurrent write) Chroma can hold a record whose
    # vector is not in its vector segment yet, and then fails any read that names it.
    from chromadb.errors import InternalError

    chunks = [chunk(0), chunk(1), chunk(2)]
    store.put_chunks("fp1", chunks, np.vstack([unit(1, 0, 0), unit(1, 1, 0), unit(0, 0, 1)]), 1.0)
    real = store.vectors

    def without_a_md_1(key, ids):
        if "a.md#1" in ids:
            try:
                raise InternalError("Error executing plan: Internal error: Error finding id")
            except InternalError as exc:
                raise StoreError("Chroma failed to read vectors") from exc
        return real(key, ids)

    monkeypatch.setattr(store, "vectors", without_a_md_1)
    query = unit(1, 0, 0)[None, :]
    assert store.similarities("fp1", query, ["a.md#0", "a.md#1", "a.md#2"]) == {
        "a.md#0": pytest.approx(1.0),
        "a.md#2": pytest.approx(0.0),
    }

    def down(key, ids):
        raise StoreError("cannot reach the Chroma server") from ConnectionError("refused")

    monkeypatch.setattr(store, "vectors", down)
    with pytest.raises(StoreError, match="cannot reach"):
        store.similarities("fp1", query, ["a.md#0"])


def test_delete_chunks_removes_exactly_those_ids(store):
    chunks = [chunk(n) for n in range(4)]
    store.put_chunks("fp1", chunks, np.vstack([unit(1, n, 0) for n in range(4)]), 1.0)

    store.delete_chunks("fp1", ["a.md#1", "a.md#3", "not-there"])

    assert sorted(store.chunk_ages("fp1")) == ["a.md#0", "a.md#2"]


def test_file_registry_round_trips_and_forgets(store):
    records = [
        FileRecord("a.md", "a" * 64, 120, 1_700_000_000_123_456_789, ("a.md#0", "a.md#1")),
        FileRecord("b.py", "b" * 64, 7, 1, ()),
    ]
    store.put_files("fp1", records)
    assert store.files("fp1") == {"a.md": records[0], "b.py": records[1]}

    store.put_files("fp1", [replace(records[1], sha256="c" * 64, chunk_ids=("b.py#0",))])
    store.delete_files("fp1", ["a.md"])

    assert store.files("fp1") == {
        "b.py": replace(records[1], sha256="c" * 64, chunk_ids=("b.py#0",))
    }


def test_collection_keys_lists_every_index_and_drop_removes_one(store):
    for key in ("fp2", "fp1", "fp1-17"):
        store.put_files(key, [FileRecord("a.md", "a" * 64, 1, 1, ("a.md#0",))])
        store.put_chunks(key, [chunk(0)], unit(1, 0, 0)[None, :], 1.0)
    store.set_active(META)
    assert store.collection_keys() == ["fp1", "fp1-17", "fp2"]

    store.drop("fp1-17")
    store.drop("never-existed")

    assert store.collection_keys() == ["fp1", "fp2"]
    assert (store.files("fp1-17"), store.get_chunks("fp1-17")) == ({}, [])
    assert store.active() == META


def test_a_dropped_index_stays_readable_through_handles_already_in_use(store, tmp_path):
    # A search that read the old active pointer just before a rebuild switched it must finish.
    store.put_chunks("fp1", [chunk(0), chunk(1)], np.vstack([unit(1, 0, 0), unit(0, 1, 0)]), 1.0)
    assert store.get_chunks("fp1", ["a.md#0"]) == [chunk(0)]  # this reader's handle is open

    ChromaStore(index_dir=tmp_path / "index").drop("fp1")  # another process tidies it away

    assert store.get_chunks("fp1", ["a.md#0"]) == [chunk(0)]
    assert [cid for cid, _ in store.query("fp1", unit(0, 1, 0)[None, :], 5)] == ["a.md#1", "a.md#0"]
    assert ChromaStore(index_dir=tmp_path / "index").get_chunks("fp1") == []  # the name is free
    assert store.collection_keys() == []


def test_a_dropped_index_is_deleted_once_its_grace_period_is_over(store, tmp_path, monkeypatch):
    store.put_chunks("fp1", [chunk(0)], unit(1, 0, 0)[None, :], 1.0)
    assert store.get_chunks("fp1") == [chunk(0)]
    monkeypatch.setattr("bekb.store.chroma.RETIRE_GRACE", 0.0)

    ChromaStore(index_dir=tmp_path / "index").drop("fp1")

    assert (store.get_chunks("fp1"), store.count("fp1")) == ([], 0)


def test_query_on_an_emptied_collection_returns_nothing(store):
    store.put_chunks("fp1", [chunk(0)], unit(1, 0, 0)[None, :], 1.0)
    store.delete_chunks("fp1", ["a.md#0"])
    assert store.query("fp1", unit(1, 0, 0)[None, :], 5) == []


def test_a_second_store_on_the_same_dir_sees_the_committed_state(store, tmp_path):
    store.put_files("fp1", [FileRecord("a.md", "a" * 64, 1, 1, ("a.md#0",))])
    store.set_active(META)

    other = ChromaStore(index_dir=tmp_path / "index")

    assert other.active() == META
    assert other.files("fp1") == {"a.md": FileRecord("a.md", "a" * 64, 1, 1, ("a.md#0",))}


def test_a_reader_keeps_working_after_a_writer_rebuilds_twice(tiny_settings):
    # Rebuilds alternate between two collection names; a long-lived reader (the MCP server)
    # must not keep using its handle on the dropped, same-named collection.
    writer = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    writer.index()
    reader = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    expected = [(h.path, h.start_line, h.end_line) for h in reader.search("saga compensation")]
    first = writer.store.active().collection

    keys = []
    for _ in range(3):
        writer.index(full=True)
        keys.append(writer.store.active().collection)
        hits = reader.search("saga compensation")
        assert [(h.path, h.start_line, h.end_line) for h in hits] == expected

    assert [key == first for key in keys] == [False, True, False]  # a name came back
    assert_consistent(reader)


# -- server mode -------------------------------------------------------------------------------


def search_elsewhere(root: Path, index_dir: Path, url: str) -> list[list[list[object]]]:
    """Run QUERIES in a separate process on `url` with `index_dir`; (path, start, end) lists."""
    done = subprocess.run(
        [sys.executable, __file__, str(root), str(index_dir), url, TINY_AGENT, *QUERIES],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def located(hits) -> list[list[object]]:
    return [[h.path, h.start_line, h.end_line] for h in hits]


def server_kb(
    tiny_root: Path, index_dir: Path, url: str, embedder=None, *, adapt: bool = True
) -> KnowledgeBase:
    settings = Settings.load(
        root=tiny_root,
        index_dir=index_dir,
        agent_files=(TINY_AGENT,),
        chroma_url=url,
        query_adapter=adapt,
    )
    return KnowledgeBase.open(settings, embedder=embedder or HashingEmbedder())


@pytest.mark.slow  # long: runs in `make test-rest`
def test_another_process_without_local_state_searches_what_this_one_indexed(
    chroma_url, tiny_root, tmp_path
):
    kb = server_kb(tiny_root, tmp_path / "here", chroma_url)
    report = kb.index()
    assert (report.added, report.chunks) == (5, 15)
    assert kb.status().store == "server"
    expected = [located(kb.search(q)) for q in QUERIES]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    got = search_elsewhere(tiny_root, elsewhere, chroma_url)

    assert got == expected
    assert all(got)
    assert not (elsewhere / "chroma").exists()  # no embedded store appeared there
    # BM25 was rebuilt there from the server, for the same committed generation.
    assert sorted(p.name for p in (elsewhere / "bm25").iterdir()) == sorted(
        p.name for p in (tmp_path / "here" / "bm25").iterdir()
    )


def test_server_index_updates_only_the_edited_file(chroma_url, tiny_root, tmp_path):
    embedder = HashingEmbedder()
    # Chunk embeddings only: the query adapter's pseudo-queries would add model calls.
    kb = server_kb(tiny_root, tmp_path / "index", chroma_url, embedder, adapt=False)
    kb.index()
    before, _ = store_state(kb)
    path = tiny_root / "beta/docs/auth.md"
    path.write_text(path.read_text().replace("15 minutes", "5 minutes"))
    calls = embedder.calls

    report = kb.index()

    after, _ = store_state(kb)
    assert (report.added, report.changed, report.removed, report.unchanged) == (0, 1, 0, 4)
    assert (report.embedded, embedder.calls - calls) == (1, 1)
    assert {p: ids for p, ids in after.items() if p != "beta/docs/auth.md"} == {
        p: ids for p, ids in before.items() if p != "beta/docs/auth.md"
    }
    assert after["beta/docs/auth.md"] != before["beta/docs/auth.md"]
    assert_consistent(kb)


def test_two_machines_indexing_one_server_share_one_index(chroma_url, tiny_root, tmp_path):
    first = server_kb(tiny_root, tmp_path / "machine-a", chroma_url)
    first.index()
    second_embedder = HashingEmbedder()
    second = server_kb(tiny_root, tmp_path / "machine-b", chroma_url, second_embedder)

    report = second.index()

    assert (report.added, report.changed, report.removed, report.unchanged) == (0, 0, 0, 5)
    assert (report.embedded, report.full_rebuild, second_embedder.calls) == (0, False, 0)
    assert store_state(first) == store_state(second)
    assert sorted(store_state(second)[0]) == TINY_FILES
    assert_consistent(second)


def test_a_file_indexed_by_one_machine_is_found_by_the_other(chroma_url, tiny_root, tmp_path):
    first = server_kb(tiny_root, tmp_path / "machine-a", chroma_url)
    first.index()
    second = server_kb(tiny_root, tmp_path / "machine-b", chroma_url)
    assert "zebrafish" not in " ".join(h.text for h in second.search("zebrafish migration"))
    new = "alpha/skills/sagas/references/zebrafish.md"
    (tiny_root / new).write_text("# Zebrafish\n\nZebrafish migration happens at dawn.\n")

    first.index()

    hits = second.search("zebrafish migration", k=1)
    assert [(h.path, h.heading, h.start_line, h.end_line, h.text) for h in hits] == [
        (new, "Zebrafish", 1, 3, "# Zebrafish\n\nZebrafish migration happens at dawn.\n")
    ]
    assert_consistent(second)


def test_a_server_that_goes_down_mid_session_raises_one_line_store_error(tiny_root, tmp_path):
    with ChromaServer(tmp_path / "server") as server:
        kb = server_kb(tiny_root, tmp_path / "index", server.url)
        kb.index()
        assert kb.search("saga compensation")
        server.stop()

        with pytest.raises(StoreError) as caught:
            kb.search("saga compensation")

    assert (
        str(caught.value) == f"cannot reach the Chroma server at {server.url}: is `chroma run` up?"
    )


def test_opening_a_server_that_is_down_raises_store_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError) as caught:
        ChromaStore(index_dir=tmp_path, url=url)
    assert str(caught.value) == f"cannot reach the Chroma server at {url}: is `chroma run` up?"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("localhost:8000", id="no-scheme"),
        pytest.param("ftp://127.0.0.1:8000", id="wrong-scheme"),
        pytest.param("http://", id="no-host"),
    ],
)
def test_a_malformed_server_url_is_refused_before_connecting(tmp_path, url):
    with pytest.raises(StoreError) as caught:
        ChromaStore(index_dir=tmp_path, url=url)
    assert str(caught.value) == f"invalid Chroma URL {url!r}: expected http://host:port"


def test_cli_against_a_server_that_is_down_exits_1_with_one_error_line(tiny_root, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bekb", "--root", tiny_root, "--chroma-url", url),
            *("--index-dir", tmp_path / "index", "search", "saga"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BEKB_AGENT_FILES": TINY_AGENT},
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"error: cannot reach the Chroma server at {url}: is `chroma run` up?\n",
    )


def _search_main(argv: list[str]) -> None:
    root, index_dir, url, agent, *queries = argv
    settings = Settings.load(
        root=Path(root), index_dir=Path(index_dir), agent_files=(agent,), chroma_url=url
    )
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())
    print(json.dumps([located(kb.search(query)) for query in queries]))


if __name__ == "__main__":
    _search_main(sys.argv[1:])


def test_a_second_machine_waits_for_the_writer_lease_then_fails_clearly(
    chroma_url, tiny_root, tmp_path
):
    first = server_kb(tiny_root, tmp_path / "machine-a", chroma_url)
    second = KnowledgeBase.open(
        server_kb(tiny_root, tmp_path / "machine-b", chroma_url).settings,
        embedder=HashingEmbedder(),
        lock_timeout=1,
    )
    with (
        first.store.writer_lease(timeout=5),
        pytest.raises(IndexLockedError, match=r"another writer .* is indexing into"),
    ):
        second.index()
    assert second.index().added == 5  # released: the second machine indexes
    assert_consistent(second)


@pytest.mark.slow  # long: runs in `make test-rest`
def test_the_lease_of_a_killed_writer_is_taken_over_once_its_beat_stops(
    chroma_url, tiny_root, tmp_path, monkeypatch
):
    monkeypatch.setattr("bekb.store.lease.LEASE_TTL", 1.0)
    kb = server_kb(tiny_root, tmp_path / "machine-a", chroma_url)
    # What a writer killed mid-build leaves: its lease, never renewed again. Its clock is
    # never consulted: only whether its beat moves while this machine watches.
    kb.store.meta.put("writer", {"owner": "dead-host:1:gone", "beat": 7}, "plant a lease")
    waits: list[str] = []
    from bekb.store.lease import WriterLease

    with WriterLease(
        kb.store.meta, where=chroma_url, timeout=10, on_wait=lambda h, _: waits.append(h)
    ):
        assert kb.store.meta.get("writer", "read")["owner"] != "dead-host:1:gone"
    assert set(waits) == {"dead-host:1:gone"}
    assert kb.store.meta.get("writer", "read") is None  # released on the way out
    kb.store.meta.put("writer", {"owner": "dead-host:1:gone", "beat": 8}, "plant a lease")
    assert kb.index().added == 5


def test_reads_are_paged_so_large_indexes_stay_readable(tmp_path, monkeypatch):
    import bekb.store.chroma

    monkeypatch.setattr(bekb.store.chroma, "READ_BATCH", 3)
    store = ChromaStore(index_dir=tmp_path)
    chunks = [
        Chunk(f"id{i}", "a.md", i, "H", i + 1, i + 1, "prose", f"text {i}\n", "ctx", "sha")
        for i in range(8)
    ]
    vectors = np.eye(8, 4, dtype=np.float32) + 0.1
    store.put_chunks("k", chunks, vectors, written_at=1.0)
    assert sorted(c.id for c in store.get_chunks("k")) == [f"id{i}" for i in range(8)]
    assert sorted(c.id for c in store.get_chunks("k", [f"id{i}" for i in range(7)])) == [
        f"id{i}" for i in range(7)
    ]
    assert sorted(store.chunk_ages("k")) == [f"id{i}" for i in range(8)]


def _random_unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("mode", ["embedded", "server"])
def test_dense_search_returns_the_exact_nearest_chunks(mode, request, tmp_path):
    # Random 384-d vectors are HNSW's hard case: Chroma's default breadth finds about 74% of
    # the true 40 nearest here; bekb's setting must find nearly all of them.
    url = request.getfixturevalue("chroma_url") if mode == "server" else None
    store = ChromaStore(index_dir=tmp_path, url=url, prefix=f"recall-{mode}")
    vectors = _random_unit_vectors(3000, seed=1)
    chunks = [chunk(n, path=f"f{n}.md") for n in range(len(vectors))]
    store.put_chunks("k", chunks, vectors, written_at=1.0)

    found = []
    for query in _random_unit_vectors(15, seed=2):
        exact = {chunks[i].id for i in np.argsort(-(vectors @ query))[:40]}
        found.append(len(exact & {cid for cid, _ in store.query("k", query[None, :], 40)}) / 40)

    assert np.mean(found) >= 0.97


def test_an_index_built_with_chromas_default_breadth_is_widened_by_the_next_run(tiny_settings):
    from bekb.store import HNSW_EF_SEARCH

    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    kb.index()
    name = kb.store._chunks_name(kb.store.active().collection)
    # What an index built before bekb set the breadth looks like: Chroma's default (100).
    kb.store._collection(name, create=False).modify(configuration={"hnsw": {"ef_search": 100}})

    assert kb.index().embedded == 0  # nothing changed

    reopened = ChromaStore(index_dir=tiny_settings.index_dir)
    collection = reopened._collection(name, create=False)
    assert collection.configuration_json["hnsw"]["ef_search"] == HNSW_EF_SEARCH


def _log_bytes(index_dir: Path) -> int:
    """What Chroma's write log (its `embeddings_queue` table) holds, in metadata bytes."""
    import sqlite3

    with sqlite3.connect(index_dir / "chroma" / "chroma.sqlite3") as db:
        return int(db.execute("SELECT COALESCE(SUM(LENGTH(metadata)), 0) FROM embeddings_queue")
                   .fetchone()[0])  # fmt: skip


def test_rebuilds_do_not_grow_chromas_write_log_without_bound(tiny_settings, tiny_root):
    """Each build rewrites the meta records (the pointer, the query adapter); Chroma logs
    them until the collection is next saved, so its log is kept short there."""
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    sizes = []
    for edit in range(14):
        with (tiny_root / "alpha/skills/caching/SKILL.md").open("a", encoding="utf-8") as f:
            f.write(f"\n- edit {edit}\n")
        kb.index()
        sizes.append(_log_bytes(tiny_settings.index_dir))
    # Unpurged, the log grows by every build's meta records (about 25 KB here, 0.8 MB on the
    # cited set): 350 KB after 14 builds.
    assert max(sizes[7:]) < 4 * sizes[0], sizes


def test_a_meta_collection_made_before_is_given_the_short_log(store, tmp_path):
    store.set_active(META)
    client = store._client  # the same embedded Chroma a second store in this process opens
    client.get_collection("bekb-meta").modify(configuration={"hnsw": {"sync_threshold": 1000}})

    ChromaStore(index_dir=tmp_path / "index").active()  # a later process opens it

    hnsw = client.get_collection("bekb-meta").configuration_json["hnsw"]
    assert hnsw["sync_threshold"] == 10
