"""The second round of hardening: the twelve defects and the smaller problems an independent
attempt to break bekb found (docs/reliability.md, "Second round"). Each test is named after
the defect it reproduces (d01..d12) or the smaller problem; against the code before the fix,
each fails (or hangs into its timeout).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import chroma_server as servers
import pytest
from conftest import TINY_AGENT, HashingEmbedder, assert_consistent, ctrl_c_reaches_child
from hardening_support import HASHING_CLI, clean_env, error_line, probe, run_cli, tally

from bekb import ConfigError, IndexStateError, KnowledgeBase, Settings, UsageError
from bekb.cli.render import print_json

pytestmark = pytest.mark.hardening
chroma_server = servers.chroma_server  # the `chroma run` fixtures, for this module
chroma_url = servers.chroma_url

SAGAS = "alpha/skills/sagas"
QUERY = "saga compensation"
BOMB = """---
name: bomb
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
description: *h
---
# Laughs

Nothing to see here but a billion laughs in the frontmatter.
"""


def cli(settings: Settings, *args: object, **env: str) -> subprocess.CompletedProcess[str]:
    """`bekb --root R --index-dir I ARGS` as a process, with the hashing model."""
    base = ["--root", settings.root, "--index-dir", settings.index_dir]
    return run_cli(*base, *args, env={"BEKB_AGENT_FILES": TINY_AGENT, **env}, timeout=60)


def measured_cli(settings: Settings, *args: object) -> tuple[int, float, str]:
    """Exit code, peak RSS (MB) and stderr of `bekb ARGS` with the hashing model.

    The peak is the process's own high-water mark (VmHWM, read while it runs): wait4's
    ru_maxrss would count the pytest process it was forked from.
    """
    base = [sys.executable, str(HASHING_CLI), "--root", str(settings.root)]
    base += ["--index-dir", str(settings.index_dir), *map(str, args)]
    peak_kb = 0
    with subprocess.Popen(
        base,
        env=clean_env({"BEKB_AGENT_FILES": TINY_AGENT}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                break
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
            time.sleep(0.05)
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, peak_kb / 1024, err


# -- d01: personas read through links ---------------------------------------------------------


def test_d01_a_persona_linked_out_of_the_root_or_to_a_device_is_never_read(
    tiny_root, tiny_settings, tmp_path
):
    secret = tmp_path / "secret.md"
    secret.write_text("---\nname: evil\n---\nThe outside secret.\n", encoding="utf-8")
    (tiny_root / "specialists" / "evil.md").symlink_to(secret)
    (tiny_root / "alpha" / "agents" / "zero.md").symlink_to("/dev/zero")
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    kb.index()

    with pytest.raises(UsageError, match=r"^no persona named 'evil'"):
        kb.ask(QUERY, persona="evil", use_llm=False)
    assert kb.persona("fastapi-pro").path == "alpha/agents/fastapi-pro.md"  # no MemoryError
    done = cli(tiny_settings, "ask", QUERY, "--as", "evil", "--no-llm")
    assert done.returncode == 2 and "The outside secret" not in done.stdout + done.stderr
    tally("second round: hostile files", 3)


# -- d02: a YAML bomb in frontmatter -------------------------------------------------------------


def test_d02_a_billion_laughs_frontmatter_indexes_in_bounded_memory(tiny_root, tiny_settings):
    (tiny_root / SAGAS / "references" / "bomb.md").write_text(BOMB, encoding="utf-8")

    code, peak_mb, err = measured_cli(tiny_settings, "index")

    assert code == 0, err
    assert peak_mb < 1000, peak_mb
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    started = time.monotonic()
    bomb = next(s for s in kb.sources() if s.path.endswith("bomb.md"))  # MCP list_sources
    assert (bomb.title, bomb.description) == ("bomb", "")  # its frontmatter refused whole
    assert time.monotonic() - started < 5
    tally("second round: hostile files", 2)


# -- d03: FIFOs and devices named *.md --------------------------------------------------------


def test_d03_a_fifo_or_a_device_among_the_files_is_refused_never_read(tiny_root, tiny_settings):
    folder = tiny_root / SAGAS / "references"
    os.mkfifo(folder / "pipe.md")
    (folder / "zero.md").symlink_to("/dev/zero")
    refused = {
        f"{SAGAS}/references/pipe.md": "not a regular file (a FIFO, device or socket)",
        f"{SAGAS}/references/zero.md": "symlink points outside the workspace root",
        "../outside/secrets.md": "cited path escapes the workspace root",  # the fixture's own
    }

    for command in (["index", "--json"], ["search", QUERY, "--json"], ["status", "--json"]):
        done = cli(tiny_settings, *command)  # a read of the FIFO would block: the timeout
        assert done.returncode == 0, done.stderr
    report = json.loads(cli(tiny_settings, "index", "--json").stdout)
    assert {r["path"]: r["reason"] for r in report["refused"]} == refused
    status = json.loads(cli(tiny_settings, "corpus", "status", "--json").stdout)
    assert {r["path"] for r in status["refused"]} == set(refused)
    tally("second round: hostile files", 4)


def test_d03_a_character_device_named_md_is_refused(tiny_root, tiny_settings):
    device = tiny_root / SAGAS / "references" / "random.md"
    try:
        os.mknod(device, 0o666 | 0o020000, os.makedev(1, 8))  # what /dev/random is
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")

    report = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder()).index()

    assert f"{SAGAS}/references/random.md" in [r.path for r in report.refused]
    tally("second round: hostile files", 1)


# -- d04: a Chroma server that never answers ---------------------------------------------------


def test_d04_a_chroma_server_that_accepts_but_never_answers_is_a_timely_error(tiny_settings):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel accepts connections; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        done = cli(tiny_settings, "--chroma-url", url, "status", BEKB_CHROMA_TIMEOUT="2")
        waited = time.monotonic() - started

    assert done.returncode == 1
    assert error_line(done) == (
        f"error: the Chroma server at {url} did not answer within 2s (is it overloaded or "
        "stuck? raise chroma_timeout to wait longer)"
    )
    assert waited < 20
    tally("second round: outages", 1)


# -- d05: pages damaged inside chroma.sqlite3 ---------------------------------------------------


def _zero_pages(database: Path, first: int, count: int) -> None:
    data = bytearray(database.read_bytes())
    for page in range(first, first + count):
        data[page * 4096 : (page + 1) * 4096] = bytes(4096)
    database.write_bytes(bytes(data))


def test_d05_damage_inside_the_chroma_database_is_reported_then_rebuilt(tiny_kb):
    tiny_kb.index()
    s = tiny_kb.settings
    database = s.index_dir / "chroma" / "chroma.sqlite3"
    _zero_pages(database, database.stat().st_size // 4096 // 3, 3)

    status, search, index, again, after = probe(
        s.root, s.index_dir, TINY_AGENT, "status", f"search:{QUERY}", "index", f"search:{QUERY}",
        "status",
    )  # fmt: skip

    assert status["ok"] and "is damaged" in str(status["problem"])
    assert (search["ok"], search["error"]) == (False, "StoreError")
    assert str(search["message"]).startswith(f"the index store {database.parent} is damaged (")
    assert str(search["message"]).endswith("): run `bekb index` to rebuild it")
    assert index["ok"] and again["ok"] and again["paths"][0].startswith(SAGAS)
    assert after["problem"] is None
    assert len(list(s.index_dir.glob("chroma.damaged-*"))) == 1
    tally("second round: damaged files", 3)


def test_d05_set_aside_stores_are_listed_and_only_the_newest_kept(tiny_kb):
    from bekb.store import set_aside

    tiny_kb.index()
    folder = tiny_kb.settings.index_dir / "chroma"
    for _ in range(3):
        folder.mkdir(exist_ok=True)
        time.sleep(0.01)
        newest = set_aside(folder)

    status = KnowledgeBase.open(tiny_kb.settings, embedder=HashingEmbedder()).status()
    assert status.set_aside == (str(newest),)
    tally("second round: damaged files", 1)


# -- d06: an ONNX export damaged in place -------------------------------------------------------


@pytest.fixture
def real_tiny(tiny_settings, tmp_path) -> Settings:
    """The tiny corpus indexed with the real model, its export in a cache of its own."""
    settings = tiny_settings.model_copy(update={"cache_dir": tmp_path / "cache"})
    KnowledgeBase.open(settings).index()
    return settings


def test_d06_an_export_damaged_in_place_is_never_used_and_is_made_again(real_tiny, capsys):
    kb = KnowledgeBase.open(real_tiny)
    meta = kb.store.active()
    model = kb.models.export_folder(meta.model_fingerprint) / "model.onnx"
    data = bytearray(model.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1_000_000] = os.urandom(1_000_000)  # same size, other weights
    model.write_bytes(bytes(data))

    fresh = KnowledgeBase.open(real_tiny)
    hits = fresh.search(QUERY, k=3)  # through sentence-transformers meanwhile
    assert hits[0].path.startswith(SAGAS)
    assert fresh.status().query_backend == "sentence-transformers"
    from bekb import contracts

    print_json(contracts.search_json(QUERY, hits))
    assert json.loads(capsys.readouterr().out)["hits"][0]["path"] == hits[0].path

    KnowledgeBase.open(real_tiny).index()  # nothing changed but the export: made again
    assert KnowledgeBase.open(real_tiny).status().query_backend == "onnx"
    tally("second round: damaged files", 2)


def test_d06_json_never_carries_nan_and_stays_valid_for_any_text(capsys):
    print_json({"score": float("nan"), "inf": float("-inf"), "text": "\x1b]0;x\x07\x9b\ud800"})

    out = capsys.readouterr().out
    assert json.loads(out) == {"score": None, "inf": None, "text": "\x1b]0;x\x07\x9b\ud800"}
    assert "\x1b" not in out and "\x9b" not in out
    tally("second round: damaged files", 1)


# -- d09: a damaged embedding cache --------------------------------------------------------------


def test_d09_a_damaged_embedding_cache_is_made_anew_not_a_failed_build(tiny_kb, tiny_root):
    tiny_kb.index()
    s = tiny_kb.settings
    cache = s.index_dir / "embeddings.sqlite"
    # What a damaged disk leaves: the first pages fine, the rest overwritten.
    data = bytearray(cache.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)
    cache.write_bytes(bytes(data))
    with (tiny_root / SAGAS / "SKILL.md").open("a", encoding="utf-8") as edit:
        edit.write("\n## Retries\n\nRetry a step three times before compensating.\n")

    edited, full = probe(s.root, s.index_dir, TINY_AGENT, "index", "index-full")

    assert edited["ok"], edited
    assert full["ok"], full
    tally("second round: damaged files", 2)


# -- d10: terminal escape sequences inside documents ---------------------------------------------


def test_d10_escape_sequences_in_documents_never_reach_the_terminal(tiny_root, tiny_settings):
    poison = "\x1b]0;pwned\x07\x1b]52;c;Y3VybCBldmls\x07\x1b[2J\x9b31m"
    with (tiny_root / SAGAS / "SKILL.md").open("a", encoding="utf-8") as edit:
        edit.write(f"\n## Poisoned {poison}\n\nCompensate {poison} each saga step.\n")
    assert cli(tiny_settings, "index").returncode == 0

    for command in (["search", "compensate saga step"], ["ask", "compensate saga", "--no-llm"]):
        done = cli(tiny_settings, *command)
        assert done.returncode == 0, done.stderr
        assert not {"\x1b", "\x07", "\x9b"} & set(done.stdout + done.stderr), command
    raw = cli(tiny_settings, "search", "compensate saga step", "--json").stdout
    assert "\x1b" not in raw and "\\u001b]0;pwned" in raw
    assert any(poison in hit["text"] for hit in json.loads(raw)["hits"])  # kept, escaped
    tally("second round: hostile files", 3)


# -- d11: a read-only store is not a damaged one -------------------------------------------------


@pytest.fixture
def read_only_mount(tmp_path: Path):
    """A tmpfs that the test can make read-only (skipped where mounting is not allowed)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_d11_a_read_only_store_is_called_read_only_and_never_set_aside(
    read_only_mount, tiny_settings
):
    settings = tiny_settings.model_copy(update={"index_dir": read_only_mount / "index"})
    kb = KnowledgeBase.open(settings, embedder=HashingEmbedder())
    kb.index()
    kb.store.close()  # this process lets go of the files, so the mount can turn read-only
    remount = ["mount", "-o", "remount,ro", str(read_only_mount)]
    assert subprocess.run(remount, capture_output=True).returncode == 0

    done = cli(settings, "index")

    assert done.returncode == 1
    line = error_line(done)
    assert "read-only" in line.lower() and "damaged" not in line, line
    assert not list((read_only_mount / "index").glob("chroma.damaged-*"))
    tally("second round: damaged files", 1)


def test_d11_a_store_that_cannot_be_read_is_not_damaged(tmp_path, monkeypatch):
    from bekb.store.health import diagnose

    folder = tmp_path / "chroma"
    folder.mkdir()
    # What a non-root user meets on a chmod 000 store (root reads anything).
    monkeypatch.setattr(os, "access", lambda path, mode: False)

    error = diagnose(folder, "read the index pointer", OSError("denied"))

    assert (error.damaged, str(error)) == (
        False,
        f"cannot read the index pointer: {folder} is not readable (permission denied) "
        "(fix the permissions, or point --index-dir elsewhere)",
    )
    tally("second round: damaged files", 1)


# -- d12: watching a root that is deleted and made again ---------------------------------------


def test_d12_watch_goes_on_when_the_root_is_deleted_and_made_again(tiny_root, tiny_settings):
    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    reports, errors = [], []
    stop = threading.Event()
    watcher = threading.Thread(
        target=kb.watch,
        kwargs={"debounce_ms": 100, "on_rebuild": reports.append, "on_error": errors.append,
                "stop_event": stop},
    )  # fmt: skip
    watcher.start()
    try:
        _wait(lambda: reports, "the first build")
        copy = tiny_root.with_name("root-copy")
        shutil.copytree(tiny_root, copy)
        shutil.rmtree(tiny_root)
        _wait(lambda: errors, "the failed rebuild of a missing root")
        copy.rename(tiny_root)
        with (tiny_root / SAGAS / "SKILL.md").open("a", encoding="utf-8") as edit:
            edit.write("\n## Zebra lantern\n\nThe zebra lantern compensates nightly.\n")
        _wait(lambda: any(r.changed for r in reports[1:]), "the edit after the root came back")
    finally:
        stop.set()
        watcher.join(timeout=30)
    hits = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder()).search("zebra lantern")
    assert "zebra lantern" in hits[0].text.lower()
    tally("second round: outages", 1)


def _wait(done, what: str, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- smaller problems ------------------------------------------------------------------------------


def test_ctrl_c_prints_interrupted_and_exits_130(tiny_settings):
    process = subprocess.Popen(
        [sys.executable, str(HASHING_CLI), "--root", str(tiny_settings.root), "--index-dir",
         str(tiny_settings.index_dir), "index"],
        env=clean_env({"BEKB_AGENT_FILES": TINY_AGENT, "BEKB_TEST_EMBED_DELAY": "1"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_child,
    )  # fmt: skip
    time.sleep(4)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "interrupted"
    tally("second round: the command line", 1)


@pytest.mark.parametrize("delay", [0.05, 0.1, 0.2, 0.3, 0.5])
def test_ctrl_c_while_bekb_starts_is_never_a_traceback(tiny_settings, delay):
    # `python -m bekb` as the `bekb` script runs it: a Ctrl-C may land while it imports.
    process = subprocess.Popen(
        [sys.executable, "-m", "bekb", "--root", str(tiny_settings.root), "--index-dir",
         str(tiny_settings.index_dir), "status"],
        env=clean_env({"BEKB_AGENT_FILES": TINY_AGENT}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_child,
    )  # fmt: skip
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)

    assert "Traceback" not in err
    # Interrupted (130, or -SIGINT when Python itself ends on it: before its handler exists,
    # or in its own shutdown), or done before the signal came.
    assert process.returncode in (130, -signal.SIGINT, 0), err
    tally("second round: the command line", 1)


def test_a_closed_pipe_ends_the_output_quietly(tiny_kb, tiny_settings):
    tiny_kb.index()
    process = subprocess.Popen(
        [sys.executable, str(HASHING_CLI), "--root", str(tiny_settings.root), "--index-dir",
         str(tiny_settings.index_dir), "search", QUERY, "-k", "50"],
        env=clean_env({"BEKB_AGENT_FILES": TINY_AGENT}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(10)
    process.stdout.close()  # `| head -c 10`
    err = process.stderr.read().decode()
    process.wait(timeout=60)

    assert process.returncode in (0, 141), err
    assert err == ""
    tally("second round: the command line", 1)


def test_a_full_output_device_is_one_error_line(tiny_kb, tiny_settings):
    tiny_kb.index()
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, str(HASHING_CLI), "--root", str(tiny_settings.root),
             "--index-dir", str(tiny_settings.index_dir), "search", QUERY, "--json"],
            env=clean_env({"BEKB_AGENT_FILES": TINY_AGENT}),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "error: cannot write the output: No space left on device\n"
    tally("second round: the command line", 1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"BEKB_CONFIG": "/nowhere/bekb.toml"},
            "error: BEKB_CONFIG names /nowhere/bekb.toml, which does not exist: point "
            "BEKB_CONFIG at a bekb.toml",
            id="missing-config",
        ),
        pytest.param(
            {"BEKB_CONFIG": "/tmp"},
            "error: BEKB_CONFIG names /tmp, which is a directory: point BEKB_CONFIG at a bekb.toml",
            id="config-is-a-folder",
        ),
        pytest.param(
            {"BEKB_LLM_TIMEOUT": "inf"},
            "error: invalid setting llm_timeout: Input should be less than or equal to 3600",
            id="infinite-timeout",
        ),
        pytest.param(
            {"BEKB_EMBED_MODEL": "someone/not-a-model"},
            "error: embedding model 'someone/not-a-model' is neither a local folder, the "
            "bundled model nor in the Hugging Face cache: give the path of a "
            "sentence-transformers model folder (BEKB_EMBED_MODEL=/path/to/model)",
            id="unknown-model",
        ),
    ],
)
def test_bad_settings_are_one_line_and_exit_2_at_once(tiny_root, tmp_path, env, message):
    started = time.monotonic()
    done = run_cli(
        "--root", tiny_root, "--index-dir", tmp_path / "index", "index",
        env={"BEKB_AGENT_FILES": TINY_AGENT, **env},
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (2, message + "\n")
    assert time.monotonic() - started < 10  # no retries against an unreachable hub
    assert not (tmp_path / "index").exists()
    tally("second round: the command line", 1)


def test_requiring_claude_without_a_key_fails_before_anything_is_built(tiny_root, tmp_path):
    done = run_cli(
        "--root", tiny_root, "--index-dir", tmp_path / "index", "ask", QUERY, "--llm",
        "anthropic", env={"BEKB_AGENT_FILES": TINY_AGENT},
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (2, "error: --llm anthropic needs ANTHROPIC_API_KEY\n")
    assert not (tmp_path / "index").exists()
    tally("second round: the command line", 1)


def test_read_only_commands_create_nothing(tiny_root, tmp_path):
    for command in (["status"], ["corpus", "status"], ["status", "--json"]):
        done = run_cli(
            "--root", tiny_root, "--index-dir", tmp_path / "index", *command,
            env={"BEKB_AGENT_FILES": TINY_AGENT},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert not (tmp_path / "index").exists()
    tally("second round: the command line", 3)


@pytest.mark.parametrize("where", ["is-a-file", "under-a-file"])
def test_an_index_dir_in_a_files_place_is_one_line(tiny_root, tmp_path, where):
    (tmp_path / "blocker").write_text("not a folder")
    index_dir = tmp_path / "blocker" if where == "is-a-file" else tmp_path / "blocker" / "index"

    done = run_cli(
        "--root", tiny_root, "--index-dir", index_dir, "index",
        env={"BEKB_AGENT_FILES": TINY_AGENT},
    )  # fmt: skip

    assert done.returncode == 1
    assert error_line(done) == (
        f"error: the index dir {index_dir} is not a folder (a file is in the way): move it, or "
        "pass another --index-dir"
    )
    tally("second round: the command line", 1)


def test_a_file_in_place_of_the_keyword_index_folder_is_replaced(tiny_kb):
    tiny_kb.index()
    folder = tiny_kb.settings.index_dir / "bm25"
    shutil.rmtree(folder)
    folder.write_text("in the way")

    with (tiny_kb.settings.root / SAGAS / "SKILL.md").open("a", encoding="utf-8") as edit:
        edit.write("\n## More\n\nCompensations run in reverse order.\n")
    report = KnowledgeBase.open(tiny_kb.settings, embedder=HashingEmbedder()).index()

    assert report.changed == 1 and folder.is_dir()
    tally("second round: damaged files", 1)


def test_what_a_killed_full_rebuild_left_is_dropped_by_the_next_run(tiny_kb):
    from bekb.domain import Chunk, FileRecord

    tiny_kb.index()
    leftover = Chunk("x", "a.md", 0, "", 1, 1, "prose", "half built", "", "0" * 64)
    tiny_kb.store.put_chunks("abandoned", [leftover], HashingEmbedder().embed(["x"]), 0.0)
    tiny_kb.store.put_files("abandoned", [FileRecord("a.md", "0" * 64, 1, 1, ("x",))])
    assert "abandoned" in tiny_kb.store.collection_keys()

    KnowledgeBase.open(tiny_kb.settings, embedder=HashingEmbedder()).index()  # a no-op

    assert tiny_kb.store.collection_keys() == [tiny_kb.store.active().collection]
    assert_consistent(tiny_kb)
    tally("second round: damaged files", 1)


def test_a_utf16_file_with_a_bom_is_indexed(tiny_root, tiny_settings):
    text = "# Outbox\n\nWrite the zebracrossing event to an outbox table.\n"
    (tiny_root / SAGAS / "references" / "windows.md").write_bytes(text.encode("utf-16"))

    kb = KnowledgeBase.open(tiny_settings, embedder=HashingEmbedder())
    report = kb.index()

    assert report.skipped == ()
    assert kb.search("zebracrossing outbox", k=1)[0].path == f"{SAGAS}/references/windows.md"
    assert "zebracrossing" in kb.document(f"{SAGAS}/references/windows.md")
    tally("second round: hostile files", 1)


def test_a_hundred_thousand_unresolved_citations_cost_seconds_not_minutes(tiny_root):
    from bekb.corpus.selection import select_files

    agent = tiny_root / "specialists" / "many.md"
    agent.write_text("\n".join(f"- `gone/{i}/missing.md`" for i in range(100_000)))

    started = time.monotonic()
    selection = select_files(tiny_root, agent_files=["specialists/many.md"])

    assert len(selection.unresolved) == 100_000
    assert time.monotonic() - started < 10
    tally("second round: hostile files", 1)


@pytest.mark.parametrize("k", [1.5, "5", True, -1])
def test_a_k_that_is_not_a_whole_number_is_a_usage_error(tiny_kb, k):
    tiny_kb.index()
    with pytest.raises(UsageError, match=r"^k must be"):
        tiny_kb.search(QUERY, k=k)
    tally("second round: the library", 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", " holds no questions (one JSON object per line)", id="empty"),
        pytest.param(b"\xff\xfe{", " is not UTF-8 text (byte 0)", id="not-utf8"),
        pytest.param(
            b'{"id": "a", "question": "q", "relevant": "notalist"}\n',
            ":1: not a golden question ('relevant' must be a list of strings)",
            id="relevant-not-a-list",
        ),
        pytest.param(
            b'{"id": "a", "question": "q"}\n[1, 2]\n',
            ":2: not a golden question (a line must be a JSON object)",
            id="second-line-bad",
        ),
    ],
)
def test_a_bad_questions_file_is_a_usage_error_naming_the_line(tiny_kb, tmp_path, content, message):
    tiny_kb.index()
    questions = tmp_path / "q.jsonl"
    questions.write_bytes(content)

    done = cli(tiny_kb.settings, "eval", questions)

    assert (done.returncode, done.stderr) == (2, f"error: {questions}{message}\n")
    tally("second round: the command line", 1)


def test_settings_errors_are_config_errors_in_the_library(tmp_path, monkeypatch):
    monkeypatch.setenv("BEKB_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="which does not exist"):
        Settings.load()


def test_an_index_dir_that_is_a_file_is_an_index_state_error(tiny_settings, tmp_path):
    (tmp_path / "file").write_text("x")
    settings = tiny_settings.model_copy(update={"index_dir": tmp_path / "file"})
    with pytest.raises(IndexStateError, match="is not a folder"):
        KnowledgeBase.open(settings, embedder=HashingEmbedder()).index()


def test_a_build_waiting_for_another_machines_lease_says_so(chroma_url, tiny_root, tmp_path):
    settings = Settings.load(
        root=tiny_root, index_dir=tmp_path / "a", agent_files=(TINY_AGENT,), chroma_url=chroma_url
    )
    first = KnowledgeBase.open(settings, embedder=HashingEmbedder())

    with first.store.writer_lease(timeout=5):
        done = run_cli(
            "--root", tiny_root, "--index-dir", tmp_path / "b", "--chroma-url", chroma_url,
            "index", "--json", "--lock-timeout", "1", env={"BEKB_AGENT_FILES": TINY_AGENT},
        )  # fmt: skip

    assert done.returncode == 1
    waiting = [line for line in done.stderr.splitlines() if line.startswith("waiting")]
    assert waiting == [
        f"waiting for the write lease of {chroma_url}, held by {_holder(first)} (a writer that "
        "stopped renewing it loses it after 30s)"
    ] or waiting[0].startswith(f"waiting for the write lease of {chroma_url}, held by ")
    tally("second round: outages", 1)


def _holder(kb: KnowledgeBase) -> str:
    record = kb.store.meta.get("writer", "read the lease")
    return str(record["owner"]) if record else ""
