"""Settings precedence: defaults < bekb.toml < BEKB_* environment < flags; errors are clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from bekb import ConfigError, Settings


def test_defaults():
    settings = Settings.load()
    assert (settings.root, settings.index_dir, settings.scope, settings.k) == (
        Path("corpus"),
        Path("index"),
        "cited",
        8,
    )
    assert settings.agent_files == ("specialists/backend-specialist.md",)
    assert settings.embed_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert settings.chroma_url is None and not settings.llm_enabled


def test_toml_beats_defaults_env_beats_toml_flags_beat_env(tmp_path, monkeypatch):
    (tmp_path / "bekb.toml").write_text('k = 3\nscope = "workspace"\nroot = "from-toml"\n')
    assert (Settings.load().k, Settings.load().scope) == (3, "workspace")
    monkeypatch.setenv("BEKB_K", "5")
    # A relative path in bekb.toml is relative to the file's folder (here the cwd).
    assert (Settings.load().k, Settings.load().root) == (5, tmp_path / "from-toml")
    assert Settings.load(k=7).k == 7
    assert Settings.load(k=None).k == 5  # an absent flag does not override


def test_config_file_location_can_be_set(tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.toml"
    other.write_text("k = 11\n")
    monkeypatch.setenv("BEKB_CONFIG", str(other))
    assert Settings.load().k == 11


def test_bekb_toml_is_found_from_a_folder_inside_the_project(tmp_path, monkeypatch):
    (tmp_path / "bekb.toml").write_text('root = "corpus"\nk = 9\n')
    inside = tmp_path / "corpus" / "docs"
    inside.mkdir(parents=True)
    monkeypatch.delenv("BEKB_CONFIG", raising=False)
    monkeypatch.chdir(inside)
    assert (Settings.load().k, Settings.load().root) == (9, tmp_path / "corpus")
    (inside / "bekb.toml").write_text("k = 3\n")  # the nearest one wins
    assert Settings.load().k == 3
    (inside / "bekb.toml").unlink()
    (tmp_path / "corpus" / ".git").mkdir()  # a repository inside: its top is the boundary
    assert Settings.load().k == 8


def test_contract_environment_variables(monkeypatch):
    monkeypatch.setenv("BEKB_ROOT", "/r")
    monkeypatch.setenv("BEKB_INDEX_DIR", "/i")
    monkeypatch.setenv("BEKB_CHROMA_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("BEKB_EMBED_MODEL", "/models/m")
    monkeypatch.setenv("BEKB_LLM_MODEL", "claude-x")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:8")
    s = Settings.load()
    assert (s.root, s.index_dir, s.chroma_url, s.embed_model, s.llm_model) == (
        Path("/r"),
        Path("/i"),
        "http://127.0.0.1:9",
        "/models/m",
        "claude-x",
    )
    assert s.llm_enabled and s.anthropic_base_url == "http://127.0.0.1:8"
    assert "sk-test" not in repr(s)


def test_lists_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("BEKB_AGENT_FILES", "a.md, b.md")
    monkeypatch.setenv("BEKB_EXCLUDE", "*/drafts/*")
    s = Settings.load()
    assert (s.agent_files, s.exclude) == (("a.md", "b.md"), ("*/drafts/*",))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param({"k": 0}, "invalid setting k:", id="k"),
        pytest.param({"scope": "everything"}, "invalid setting scope:", id="scope"),
        pytest.param({"no_such": 1}, "invalid setting no_such:", id="unknown"),
    ],
)
def test_invalid_values_are_config_errors(flags, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(**flags)


def test_a_malformed_toml_file_is_a_config_error(tmp_path):
    (tmp_path / "bekb.toml").write_text("k = = 3\n")
    with pytest.raises(ConfigError, match=r"bekb\.toml"):
        Settings.load()
