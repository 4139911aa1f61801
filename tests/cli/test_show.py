"""`bekb show` / `KnowledgeBase.show`: any place search or ask printed opens as those lines;
a place outside the root or the file is one error line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import hashing_app, invoke
from conftest import TINY_AGENT

from bekb import KnowledgeBase, UsageError

SAGAS = "alpha/skills/sagas/SKILL.md"
ENV = {"BEKB_AGENT_FILES": TINY_AGENT}


def file_lines(root: Path, path: str, start: int, end: int) -> str:
    lines = (root / path).read_text().splitlines()
    return "".join(line + "\n" for line in lines[start - 1 : end])


@pytest.fixture
def bekb(tiny_settings):
    app = hashing_app()
    base = ["--root", tiny_settings.root, "--index-dir", tiny_settings.index_dir]

    def run(*args: object):
        return invoke(app, [*base, *args], env=ENV)

    return run


def test_every_place_search_and_ask_print_opens_as_those_lines(bekb, tiny_root):
    hits = json.loads(bekb("search", "saga compensation timeouts", "-k", "8", "--json").out)
    answer = json.loads(bekb("ask", "how do I compensate a saga", "--no-llm", "--json").out)
    places = [(h["location"], h) for h in hits["hits"]]
    places += [(h["label"], h) for h in hits["hits"]]
    places += [(c["location"], c) for c in answer["citations"]]
    places += [
        (str(tiny_root / h["path"]) + f":{h['start_line']}-{h['end_line']}", h)
        for h in hits["hits"]
    ]  # fmt: skip  (what --full-path prints)
    assert len(places) >= 10
    for place, shown in places:
        done = bekb("show", place, "--json")
        assert done.code == 0, (place, done.err)
        excerpt = json.loads(done.out)
        assert (excerpt["path"], excerpt["start_line"], excerpt["end_line"]) == (
            shown["path"],
            shown["start_line"],
            shown["end_line"],
        )
        expected = file_lines(tiny_root, shown["path"], shown["start_line"], shown["end_line"])
        assert excerpt["text"] == expected
    first = hits["hits"][0]
    assert hits["hits"][0]["text"].splitlines() == [
        line.rstrip() if not line.strip() else line
        for line in file_lines(
            tiny_root, first["path"], first["start_line"], first["end_line"]
        ).splitlines()
    ]


def test_show_prints_numbered_lines_under_the_place(bekb, tiny_root):
    done = bekb("show", f"{SAGAS}:2-3")
    lines = (tiny_root / SAGAS).read_text().splitlines()
    assert done.out == f"{SAGAS}:2-3\n2  {lines[1]}\n3  {lines[2]}\n"


def test_a_whole_file_a_single_line_and_a_file_link_are_places_too(tiny_settings, tiny_root):
    kb = KnowledgeBase.open(tiny_settings)
    total = len((tiny_root / SAGAS).read_text().splitlines())
    whole = kb.show(SAGAS)
    assert (whole.start_line, whole.end_line, whole.total_lines) == (1, total, total)
    assert whole.text == (tiny_root / SAGAS).read_text()
    assert (kb.show(f"{SAGAS}:4").start_line, kb.show(f"{SAGAS}:4").end_line) == (4, 4)
    linked = kb.show((tiny_root / SAGAS).absolute().as_uri())
    assert linked.path == SAGAS
    assert not tiny_settings.index_dir.exists()  # reading a file builds nothing


@pytest.mark.parametrize(
    ("place", "message"),
    [
        (f"{SAGAS}:900-901", f"error: line 900 is outside {SAGAS} ("),
        (f"{SAGAS}:5-900", f"error: lines 5-900 are outside {SAGAS} ("),
        (f"{SAGAS}:5-2", "error: lines 5-2 run backwards: give the first line first"),
        (f"{SAGAS}:0", f"error: line 0 is outside {SAGAS} ("),
        ("alpha/nope.md:1-2", "error: no file 'alpha/nope.md' under the workspace root"),
        ("../outside.md", "error: ../outside.md is outside the workspace root "),
        ("/etc/hostname:1", "error: /etc/hostname is outside the workspace root "),
        ("escape.md", "error: escape.md is outside the workspace root "),
        ("", "error: the place is empty"),
    ],
)
def test_a_place_outside_the_file_or_root_is_one_error_line(bekb, tiny_root, place, message):
    (tiny_root / "escape.md").symlink_to("/etc/hostname")
    done = bekb("show", place)
    assert done.code == 2
    assert done.out == ""
    assert done.err.startswith(message) and done.err.count("\n") == 1, done.err


def test_a_fifo_is_refused_without_being_read(bekb, tiny_root):
    os.mkfifo(tiny_root / "pipe.md")
    done = bekb("show", "pipe.md")
    assert (done.code, done.err) == (1, "error: cannot read pipe.md: not a regular file (a FIFO)\n")


@pytest.mark.parametrize(
    ("label", "path"),
    [("alpha/C#.md#C# > Tips (lines 2-3)", "alpha/C#.md"), (f"{SAGAS}#F# (lines 2-3)", SAGAS)],
)
def test_a_label_opens_when_the_file_name_or_heading_holds_a_hash(bekb, tiny_root, label, path):
    (tiny_root / "alpha/C#.md").write_text("# C#\n\n## Tips\n", encoding="utf-8")
    done = bekb("show", label, "--json")
    assert done.code == 0, done.err
    shown = json.loads(done.out)
    assert (shown["path"], shown["start_line"], shown["end_line"]) == (path, 2, 3)


def test_an_empty_file_shows_no_lines(bekb, tiny_root):
    (tiny_root / "empty.md").write_text("", encoding="utf-8")
    done = bekb("show", "empty.md", "--json")
    assert done.code == 0, done.err
    assert (json.loads(done.out)["text"], json.loads(done.out)["location"]) == ("", "empty.md")
    assert (bekb("show", "empty.md").out, bekb("show", "empty.md:1").code) == ("empty.md\n", 2)


def test_lines_are_numbered_as_citations_count_them(bekb, tiny_root):
    """Only a newline ends a line, as in chunks and editors: a form feed or U+2028 does not."""
    (tiny_root / "ff.md").write_text("one\x0ctwo\u2028more\r\nthree\n", encoding="utf-8")
    done = bekb("show", "ff.md:2", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["text"] == "three\n"
    assert json.loads(bekb("show", "ff.md", "--json").out)["total_lines"] == 2


def test_a_directory_is_refused_in_one_line(bekb, tiny_root):
    done = bekb("show", "alpha")
    assert (done.code, done.err) == (
        1,
        "error: cannot read alpha: not a regular file (a directory)\n",
    )


def test_the_library_raises_usage_error(tiny_settings):
    with pytest.raises(UsageError, match="outside the workspace root"):
        KnowledgeBase.open(tiny_settings).show("/etc/passwd")
    with pytest.raises(UsageError, match="line 0 is outside"):
        KnowledgeBase.open(tiny_settings).show(SAGAS, start_line=0)
