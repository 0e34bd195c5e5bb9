"""The Source interface and what every source returns: SourceItems with stable ids and signals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

from ..errors import UserError


@dataclass
class SourceItem:
    """One thing read: a paper, a repository, a fork, a pull request, a local note or repo.

    `id` is stable across runs and sources, so duplicates merge: `arXiv:2205.14135`,
    `github:owner/repo`, `github:owner/repo@sha`, `github:owner/repo#123` (a PR), `local:path`.
    `text` is untrusted fetched data: stored and quoted, never obeyed or executed.
    """

    id: str
    kind: str  # paper | repo | fork | pr | note | competitor
    title: str
    url: str = ""
    text: str = ""
    source: str = ""  # which Source produced it: arxiv, github, semantic-scholar, local
    signals: dict = field(default_factory=dict)  # citations, influential_citations, stars, ahead_by, updated (ISO date)
    meta: dict = field(default_factory=dict)  # authors, categories, pdf_url, clone_url, sha, files, ...

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SourceItem":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


class SourceUnavailable(Exception):
    """A source could not answer (offline and not cached, rate limited, server down). Not fatal:
    the research goes on with the other sources and the plan says what was skipped."""


class Source(Protocol):
    name: str

    def search(self, query: str, limit: int) -> list[SourceItem]: ...


class NothingFound(UserError):
    """Research yielded nothing to try (no source, or nothing relevant): the run may explore instead."""


@dataclass
class Evidence:
    """Everything the research phase hands to a Distiller."""

    items: list[SourceItem]  # every item read, merged by id, with scores in meta["score"]
    selected: list[SourceItem]  # the chosen ones, best first
    patches: list = field(default_factory=list)  # mine.CandidatePatch, applicable or not
    snippets: list = field(default_factory=list)  # mine.Snippet: file:line excerpts from clones
    skipped: list[str] = field(default_factory=list)  # one line per source or step that was skipped, and why
    profile: str = ""  # output of the task's profile command, if it names one
    commits: list = field(default_factory=list)  # mine.MinedCommit: every commit read, held by a patch or skipped
    history: list[dict] = field(default_factory=list)  # between rounds: what the run tried and how it went
    queries: list[str] = field(default_factory=list)  # what the sources were asked
    explore: bool = False  # no sources on purpose (ablate's control arm): plan from the code, baseline and profile
    code: str = ""  # the target's files and main sources, for a plan written without sources
