"""Paths in a bekb.toml are relative to that file, from whatever folder bekb runs in; paths
in the environment and in flags stay relative to the working directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, TINY_AGENT, subprocess_env

from bekb import Settings

HASHING_CLI = Path(__file__).parent / "hardening" / "hashing_cli.py"


@pytest.fixture
def config_folder(tmp_path: Path) -> Path:
    """A folder with a bekb.toml naming its corpus and index by relative paths."""
    folder = tmp_path / "kb"
    shutil.copytree(FIXTURES / "corpus", folder / "corpus")
    (folder / "bekb.toml").write_text(
        f'root = "corpus"\nindex_dir = "state/index"\nagent_files = ["{TINY_AGENT}"]\n'
    )
    return folder


def bekb(*args: str, cwd: Path, config: str) -> subprocess.CompletedProcess[str]:
    """`bekb ARGS` (with the hashing model) in a subprocess started in `cwd`."""
    return subprocess.run(
        [sys.executable, str(HASHING_CLI), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=subprocess_env(BEKB_CONFIG=config),
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("named", ["absolute", "relative"])
def test_a_config_named_by_bekb_config_is_read_relative_to_itself_from_elsewhere(
    config_folder: Path, tmp_path: Path, named: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(config_folder / "bekb.toml") if named == "absolute" else "../kb/bekb.toml"

    built = bekb("index", "--json", cwd=elsewhere, config=config)
    shown = bekb("status", "--json", cwd=elsewhere, config=config)

    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["files"]["added"] == 5
    status = json.loads(shown.stdout)
    assert (Path(status["root"]), Path(status["index_dir"])) == (
        config_folder / "corpus",
        config_folder / "state" / "index",
    )
    assert list(elsewhere.iterdir()) == []  # nothing landed in the working directory


def test_a_home_relative_path_in_the_config_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "bekb.toml").write_text('root = "~/kb/corpus"\nindex_dir = "/srv/index"\n')

    settings = Settings.load()

    assert (settings.root, settings.index_dir) == (
        tmp_path / "home" / "kb" / "corpus",
        Path("/srv/index"),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("./models/mini", "{folder}/models/mini", id="dot-path"),
        pytest.param("models/local", "{folder}/models/local", id="existing-folder"),
        pytest.param("sentence-transformers/all-MiniLM-L6-v2", None, id="hub-id"),
    ],
)
def test_a_model_folder_in_the_config_is_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
) -> None:
    folder = tmp_path / "conf"
    (folder / "models" / "local").mkdir(parents=True)
    (folder / "bekb.toml").write_text(f'embed_model = "{value}"\nrerank_model = "{value}"\n')
    monkeypatch.setenv("BEKB_CONFIG", str(folder / "bekb.toml"))

    settings = Settings.load()

    want = value if expected is None else expected.format(folder=folder)
    assert (settings.embed_model, settings.rerank_model) == (want, want)


def test_paths_from_the_environment_and_flags_stay_relative_to_the_working_directory(
    config_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEKB_CONFIG", str(config_folder / "bekb.toml"))
    monkeypatch.setenv("BEKB_INDEX_DIR", "env-index")

    settings = Settings.load(root=Path("flag-root"))

    assert (settings.root, settings.index_dir) == (Path("flag-root"), Path("env-index"))
