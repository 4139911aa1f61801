"""Frozen values that cross module boundaries: source files, chunks, hits, answers, reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ChunkKind = Literal["prose", "code", "frontmatter", "data"]
FileState = Literal["indexed", "new", "changed", "deleted"]
AnswerMode = Literal["llm", "extractive", "abstain"]
# How an agent file wrote a citation: `a/b.md`, [x](a/b.md), @a/b.md, or a/b.md in the text.
CitationForm = Literal["backtick", "link", "mention", "bare"]
# Why a citation names no file that can be indexed.
CitationProblem = Literal["missing", "outside_root", "not_text"]


def passage_label(path: str, heading: str, start_line: int, end_line: int) -> str:
    """A passage with its heading trail: `path#heading (lines a-b)`."""
    anchor = f"#{heading}" if heading else ""
    return f"{path}{anchor} (lines {start_line}-{end_line})"


def location(path: str, start_line: int, end_line: int) -> str:
    """How a passage is cited and opened: `path:a-b` (editors and terminals read it); the
    bare path for no lines (an empty file)."""
    if end_line < start_line:
        return path
    lines = f"{start_line}" if start_line == end_line else f"{start_line}-{end_line}"
    return f"{path}:{lines}"


def heading_tail(heading: str) -> str:
    """The last two parts of a heading trail (`Templates > Template 4`): beside a passage's
    location, what it is about."""
    return " > ".join(heading.split(" > ")[-2:])


class Placed:
    """What names lines of a file with their heading trail (a hit, a copy, a citation):
    its `label` and `location`, one rule for all of them."""

    path: str
    heading: str
    start_line: int
    end_line: int

    @property
    def label(self) -> str:
        """`path#heading (lines a-b)`: the lines with their heading trail."""
        return passage_label(self.path, self.heading, self.start_line, self.end_line)

    @property
    def location(self) -> str:
        """`path:a-b`: how the lines are cited and opened."""
        return location(self.path, self.start_line, self.end_line)


@dataclass(frozen=True)
class SourceFile:
    """One file of the corpus, as found on disk.

    `path` is relative to the workspace root, with forward slashes.
    """

    path: str
    sha256: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Chunk:
    """A slice of one source file, with where it sits in the file.

    `text` is the exact slice of the file (so a file's chunks, in order, concatenate back to
    the file); `context` is the header prepended to it for embedding (title, description,
    heading trail). `heading` is the trail of the section it belongs to; `label`, when set,
    the trail a reader is shown instead: the one shared with a short section joined to it.
    """

    id: str
    path: str
    ordinal: int
    heading: str
    start_line: int
    end_line: int
    kind: ChunkKind
    text: str
    context: str
    file_sha256: str
    label: str = ""

    @property
    def embed_text(self) -> str:
        """The text the embedding model sees: context header, then the chunk itself."""
        return f"{self.context}\n{self.text}" if self.context else self.text


@dataclass(frozen=True)
class HitExplain:
    """Why a hit ranks where it does: each retriever's rank and the fused score."""

    dense_rank: int | None = None
    bm25_rank: int | None = None
    dense_similarity: float | None = None
    fused: float = 0.0
    rerank: float | None = None


@dataclass(frozen=True)
class Copy(Placed):
    """Another place a passage appears word for word (a file copied between plugins)."""

    path: str
    heading: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Hit(Placed):
    """A scored passage returned by search."""

    path: str
    heading: str
    start_line: int
    end_line: int
    text: str
    score: float
    kind: ChunkKind = "prose"
    chunk_ids: tuple[str, ...] = ()
    explain: HitExplain = field(default_factory=HitExplain)
    stale: bool = False
    # The same text elsewhere, ranked lower and folded into this hit.
    copies: tuple[Copy, ...] = ()
    # The lines (file line numbers) that best match the query, by the weight of the query
    # words they hold, and those words as the keyword index stems them: what a snippet shows.
    matched_lines: tuple[int, ...] = ()
    matched_stems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Citation(Placed):
    """A numbered pointer from answer text to a passage of a source file."""

    n: int
    path: str
    heading: str
    start_line: int
    end_line: int
    quote: str = ""
    stale: bool = False


@dataclass(frozen=True)
class Usage:
    """Tokens the Anthropic API counted for an answer, over every call it took."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )


@dataclass(frozen=True)
class Turn:
    """An earlier exchange of a conversation: the question and the answer's text."""

    question: str
    answer: str


@dataclass(frozen=True)
class Answer:
    """The answer to a question: its text, how it was made, and what it cites."""

    question: str
    mode: AnswerMode
    text: str
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]
    persona: str = ""
    notice: str = ""
    # Names in the question (products, APIs, identifiers) the knowledge base never mentions.
    uncovered: tuple[str, ...] = ()
    # Queries searched beside the question: Claude's rewrites of it (query expansion), and
    # those of the follow-up searches it made while answering.
    rewrites: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    usage: Usage | None = None  # None: no API call was made
    # Why the answer did not come from the persona's own sources (it is no configured agent
    # file, so the whole index was searched); "" when it did, or no persona was asked for.
    persona_notice: str = ""


@dataclass(frozen=True)
class Excerpt:
    """Lines of a file under the root, as `bekb show` prints them."""

    path: str
    start_line: int
    end_line: int
    text: str
    total_lines: int

    @property
    def location(self) -> str:
        """`path:a-b`."""
        return location(self.path, self.start_line, self.end_line)


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be indexed, and why (binary, unreadable, not UTF-8...)."""

    path: str
    reason: str


@dataclass(frozen=True)
class UnresolvedCitation:
    """A path an agent file cites that names no file bekb can index, and why.

    `path` is root-relative where the citation stays under the root (as written otherwise);
    `detail` is the refusal as `refused` reports it (empty for a missing file).
    """

    path: str
    problem: CitationProblem
    agent_file: str
    form: CitationForm
    detail: str = ""


# The arrangements of agents and skills `bekb init` recognises in a folder.
LayoutKind = Literal["agents", "claude", "plugins", "workspace"]


@dataclass(frozen=True)
class Layout:
    """One arrangement of agent files and skills found in a folder: its kind, the globs it
    was found by (relative to the folder) and how many of each it holds."""

    kind: LayoutKind
    where: tuple[str, ...]
    agent_files: int
    skills: int


@dataclass(frozen=True)
class InitReport:
    """What `bekb init` found in a folder, the bekb.toml it wrote, and what that selects."""

    folder: Path
    config: Path
    layouts: tuple[Layout, ...]
    agent_files: tuple[str, ...]
    include: tuple[str, ...]
    scope: Literal["cited", "workspace"]
    index_dir: str
    files: int  # how many files the written settings select
    unresolved_citations: tuple[UnresolvedCitation, ...]
    next_commands: tuple[str, ...]


@dataclass(frozen=True)
class IndexReport:
    """What one `index()` run did."""

    added: int
    changed: int
    removed: int
    unchanged: int
    chunks: int
    embedded: int
    cached: int
    seconds: float
    full_rebuild: bool = False
    # Why the run rebuilt the index from scratch: asked (`--full`), no index yet, or the
    # setting that changed since the index was built; None for an incremental run.
    rebuild_reason: str | None = None
    skipped: tuple[SkippedFile, ...] = ()
    unresolved: tuple[str, ...] = ()
    refused: tuple[SkippedFile, ...] = ()
    # Seconds per stage of the run (select, scan, chunk, model load, embed, write, ...),
    # each stage's own time: they add up to about `seconds`.
    timings: dict[str, float] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class FileStatus:
    """One corpus file and how it compares with the index."""

    path: str
    state: FileState
    sha256: str


@dataclass(frozen=True)
class CorpusStatus:
    """Every selected file with its state, plus citations that did not resolve."""

    root: str
    files: tuple[FileStatus, ...]
    unresolved: tuple[str, ...]
    refused: tuple[SkippedFile, ...] = ()
    # Every citation that resolved to no usable file: the missing ones of `unresolved` and
    # the refused ones of `refused`, each with its problem and the agent file citing it.
    unresolved_citations: tuple[UnresolvedCitation, ...] = ()
    unmatched_globs: tuple[str, ...] = ()  # include globs that match no file

    @property
    def stale(self) -> tuple[FileStatus, ...]:
        """Files whose indexed version differs from disk (new, changed or deleted)."""
        return tuple(f for f in self.files if f.state != "indexed")


@dataclass(frozen=True)
class IndexStatus:
    """The index at a glance, for `bekb status`."""

    root: str
    index_dir: str
    agent_files: tuple[str, ...]
    built: bool
    embed_model: str
    dimensions: int
    chunker_version: str
    files: int
    chunks: int
    last_build: str | None
    last_build_seconds: float | None
    store: Literal["embedded", "server"]
    size_bytes: int
    stale: tuple[FileStatus, ...] = ()
    query_backend: str = ""
    # How the index's vectors were made: fp32, onnx-int8 (see `index_backend`).
    index_backend: str = ""
    # Why the next `bekb index` rebuilds every chunk (the settings changed the model, its
    # backend or the chunking since the index was built), or None.
    rebuild_pending: str | None = None
    query_adapter: bool = False  # searches go through an adapter fitted to this corpus
    # What is wrong with the store (damaged, unreadable), found by checking its files.
    store_problem: str | None = None
    # Damaged stores set aside by a rebuild (the newest is kept for inspection).
    set_aside: tuple[str, ...] = ()
    # Configured agent files that cannot be used, with why: `bekb index` refuses to build
    # until they are restored or `agent_files` changes (the index is searched as it is).
    unusable_agents: tuple[SkippedFile, ...] = ()


@dataclass(frozen=True)
class Source:
    """An indexed file with its title and description, for listing what the index covers."""

    path: str
    title: str
    description: str
    chunks: int


@dataclass(frozen=True)
class Persona:
    """An agent file: its name, description, Markdown body and path relative to the root."""

    name: str
    description: str
    body: str
    path: str


@dataclass(frozen=True)
class Agent:
    """An agent file as `bekb personas` lists it.

    For a configured one, `cited_files` counts the files it cites that the index holds and
    `own_files` those it answers from with `--as` (its citations, plus the indexed files no
    agent file cites); both are None for an agent file that is not configured.
    """

    name: str
    path: str
    description: str
    cited_files: int | None = None
    own_files: int | None = None


@dataclass(frozen=True)
class AgentList:
    """The agent files of an index (configured, in settings order) and the others under
    the root (by name)."""

    configured: tuple[Agent, ...]
    others: tuple[Agent, ...]


@dataclass(frozen=True)
class Progress:
    """A step of long work, for progress bars: `done` of `total` in `stage` (`wait`: held up
    by another writer, `detail` says by whom)."""

    stage: Literal["wait", "scan", "chunk", "embed", "write", "adapt", "finish"]
    done: int
    total: int
    detail: str = ""


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


@dataclass(frozen=True)
class SyncFailure:
    """A file that could not be synced, and why (one line)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class RepoSyncReport:
    """What a sync did for one repository's files."""

    name: str
    fetched: int = 0
    copied: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True)
class SyncReport:
    """What a sync did: counts per repository (sorted by name) and every failure."""

    root: Path
    repos: tuple[RepoSyncReport, ...]
    failures: tuple[SyncFailure, ...]
    unpinned: tuple[str, ...] = ()  # cited files the lock lacks
    repin: str = ""  # the command that re-pins them

    @property
    def ok(self) -> bool:
        """True when every locked file is now present with its pinned sha256."""
        return not self.failures
