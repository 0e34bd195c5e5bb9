"""The task spec: what to optimize, how to build, benchmark and check it, and how hard to try.

A task comes from a YAML file (`load_task`) or straight from CLI arguments (`task_from_repo`).
Every problem is reported as a one-line `TaskError` that names the file, the line and the field,
so a user can fix a typo without reading a traceback.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pathspec
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from research_agent.backends import BACKEND_NAMES, DEFAULT_BACKEND
from research_agent.errors import TaskError, UserError
from research_agent.runtimes import DEFAULT_RUNTIME, RUNTIME_NAMES
from research_agent.text import squash

URL_PREFIXES = ("http://", "https://", "git@", "ssh://", "file://", "git://")


# ---------------------------------------------------------------------------
# Field types
# ---------------------------------------------------------------------------


def _reject_bool(value: Any) -> Any:
    # YAML 1.1 reads `yes`/`on` as true; pydantic would silently turn that into 1.
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {str(value).lower()}")
    return value


def _as_list(value: Any) -> Any:
    # `protected: bench.sh` is as clear as `protected: [bench.sh]`.
    return [value] if isinstance(value, str) else value


def _none_as_empty_mapping(value: Any) -> Any:
    # A block whose keys are all commented out parses as null.
    return {} if value is None else value


Count = Annotated[int, BeforeValidator(_reject_bool)]
Number = Annotated[float, BeforeValidator(_reject_bool)]
StrList = Annotated[list[str], BeforeValidator(_as_list)]
FreeDict = Annotated[dict[str, Any], BeforeValidator(_none_as_empty_mapping)]


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelled key would otherwise be silently ignored."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


# ---------------------------------------------------------------------------
# Blocks of the spec
# ---------------------------------------------------------------------------


class Metric(_Strict):
    name: str
    direction: Literal["max", "min"] = "max"
    regex: str | None = None  # group 1 of the first match is the value; else `METRIC <name>=<value>` lines
    # A benchmark tool's own output instead (research_agent/metric_formats): criterion, go, ...
    format: str | None = None

    @field_validator("name")
    @classmethod
    def _name_is_one_word(cls, name: str) -> str:
        return _one_word_metric(name)

    @field_validator("regex")
    @classmethod
    def _regex_has_value_group(cls, regex: str | None) -> str | None:
        if regex is None:
            return None
        try:
            compiled = re.compile(regex)
        except re.error as err:
            raise ValueError(f"invalid regular expression: {err}") from None
        if compiled.groups < 1:
            raise ValueError("needs a capture group: group 1 is the metric value, e.g. 'gflops: ([0-9.]+)'")
        return regex

    @field_validator("format")
    @classmethod
    def _known_format(cls, format: str | None) -> str | None:
        from research_agent.metric_formats import FORMATS

        if format is None or format in FORMATS:
            return format
        close = difflib.get_close_matches(format, FORMATS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"unknown format {format!r} ({hint}expected one of: {', '.join(FORMATS)})")

    @model_validator(mode="after")
    def _regex_or_format(self) -> Metric:
        if self.regex is not None and self.format is not None:
            raise ValueError("give regex or format, not both")
        return self


BUILTIN_METRICS = ("rss_mb", "cpu_s")  # measured by the OS for every benchmark run (lower is better)
HOLDOUT_DIR_VAR = "RA_HOLDOUT_DIR"  # where a holdout command finds its files on the worker


def _one_word_metric(name: str) -> str:
    if not name.strip():
        raise ValueError("must not be empty")
    if re.search(r"[\s=]", name):
        raise ValueError(
            f"must be one word without spaces or '=' (it is read from 'METRIC <name>=<value>' lines), got {name!r}"
        )
    return name


class Guard(_Strict):
    """A metric of the same benchmark runs that a kept change must not regress beyond max_regression."""

    direction: Literal["max", "min"] | None = None  # default: min for the built-ins rss_mb and cpu_s
    max_regression: Number = Field(ge=0)  # relative: 0.05 = at most 5% worse than the base


class Holdout(_Strict):
    """Benchmarks the runtime never sees, run on every candidate that passes the main gate.

    Each word of a command that names a file beside the task file (not one git ignores there, such
    as a build output) is a holdout file: kept out of the run's repository, copied to the run
    directory and shipped to cloud workers outside the worktree, and reached through
    $RA_HOLDOUT_DIR. The commands run from the worktree root, like the bench.
    """

    commands: StrList
    files: dict[str, str] = Field(default_factory=dict)  # name under $RA_HOLDOUT_DIR -> source file
    metric: str | None = None  # default: the task's metric (and its regex)
    regex: str | None = None
    direction: Literal["max", "min"] | None = None  # default: the task metric's
    max_regression: Number = Field(0.0, ge=0, lt=1)  # 0: the candidate must be shown better there

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        if isinstance(data, (str, list)):  # `holdout: ./bench-holdout.sh` or a list of commands
            return {"commands": data}
        if isinstance(data, dict) and isinstance(data.get("files"), (list, str)):
            data = {**data, "files": {_holdout_name(f): f for f in _as_list(data["files"])}}
        return data

    @field_validator("commands")
    @classmethod
    def _some_commands(cls, commands: list[str]) -> list[str]:
        if not commands or any(not c.strip() for c in commands):
            raise ValueError("needs at least one non-empty command")
        return commands

    @field_validator("metric")
    @classmethod
    def _metric_one_word(cls, name: str | None) -> str | None:
        return None if name is None else _one_word_metric(name)


def _holdout_name(path: str) -> str:
    """A holdout file's name under $RA_HOLDOUT_DIR: its path relative to the task file, kept inside."""
    parts = [part for part in Path(os.path.normpath(path)).parts if part not in ("/", ".")]
    return "/".join("__" if part == ".." else part for part in parts)


class Timeouts(_Strict):
    """Seconds."""

    build: Number = Field(600.0, gt=0)
    bench: Number = Field(300.0, gt=0)
    check: Number = Field(600.0, gt=0)
    runtime: Number = Field(1800.0, gt=0)


class Experiments(_Strict):
    parallel: Count = Field(2, ge=1)
    rounds: Count = Field(1, ge=1)
    repeats: Count = Field(5, ge=2)
    max_repeats: Count = 15
    min_effect: Number = Field(0.01, ge=0, lt=1)
    noise_pairs: Count = Field(3, ge=0)  # base-vs-base pairs on each worker before its first experiment; 0: off
    max_noise: Number = Field(0.05, gt=0)  # paired noise (sd of log-ratios) above which a worker is noisy

    @field_validator("max_repeats")
    @classmethod
    def _not_below_repeats(cls, max_repeats: int, info: ValidationInfo) -> int:
        # Runs only when max_repeats is written out; a defaulted one is raised below instead.
        repeats = info.data.get("repeats")
        if repeats is not None and max_repeats < repeats:
            raise ValueError(f"must be >= repeats ({repeats}), got {max_repeats}")
        return max_repeats

    @model_validator(mode="after")
    def _default_max_repeats_follows_repeats(self) -> Experiments:
        if self.max_repeats < self.repeats:
            self.max_repeats = self.repeats
        return self


class _NamedWithOptions(_Strict):
    """A `name` (or `backend`) plus free options that belong to whatever it names.

    In YAML the options sit flat beside the name; in Python they live in `.options`.
    """

    _name_key: ClassVar[str] = "name"

    @model_validator(mode="before")
    @classmethod
    def _collect_options(cls, data: Any) -> Any:
        if isinstance(data, str):  # `runtime: codex` is short for `runtime: {name: codex}`
            return {cls._name_key: data}
        if data is None:
            return {}
        if not isinstance(data, dict):
            return data  # let pydantic report the type error
        data = dict(data)
        options = data.pop("options", None)
        options = dict(options) if isinstance(options, dict) else {}
        options.update({key: value for key, value in data.items() if key != cls._name_key})
        named = {cls._name_key: data[cls._name_key]} if cls._name_key in data else {}
        own = {key: options.pop(key) for key in list(options) if key in cls.model_fields and key not in ("options", cls._name_key)}
        return {**named, **own, "options": options}

    @model_serializer
    def _flatten_options(self) -> dict[str, Any]:
        own = {key: getattr(self, key) for key in type(self).model_fields if key not in ("options", self._name_key)}
        return {self._name_key: getattr(self, self._name_key), **{k: v for k, v in own.items() if v}, **self.options}


class RuntimeSpec(_NamedWithOptions):
    name: Literal[RUNTIME_NAMES] = DEFAULT_RUNTIME  # type: ignore[valid-type]
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _command_runtime_has_command(self) -> RuntimeSpec:
        command = self.options.get("command")
        if self.name == "command" and not (isinstance(command, str) and command.strip()):
            raise ValueError("the 'command' runtime needs a non-empty 'command' option")
        return self


class Workers(_NamedWithOptions):
    _name_key: ClassVar[str] = "backend"

    backend: Literal[BACKEND_NAMES] = DEFAULT_BACKEND  # type: ignore[valid-type]
    writable: StrList = Field(default_factory=list)  # paths confined commands may also write (~ expanded), e.g. ~/.cache/ccache
    options: dict[str, Any] = Field(default_factory=dict)


class Research(_Strict):
    queries: StrList = Field(default_factory=list)  # derived from the goal when empty
    papers: Count = Field(8, ge=0)
    repos: Count = Field(5, ge=0)
    prs: Count = Field(10, ge=0)
    local: StrList = Field(default_factory=list)  # folders of notes, relative to the task file
    competitors: StrList = Field(default_factory=list)  # local repo paths or GitHub owner/repo
    forks_of: str | None = None  # GitHub owner/repo; None means the target's origin
    notes: Count = Field(10, ge=0)  # local notes to keep after ranking
    explore: Count = Field(0, ge=0)  # coding-agent runtimes: this many agent-proposed ("explore") hypotheses too
    weights: FreeDict = Field(default_factory=dict)  # relevance / popularity / recency
    endpoints: FreeDict = Field(default_factory=dict)  # arxiv / semantic_scholar / github base URLs
    arxiv_delay: Number = Field(3.0, ge=0)  # seconds between arXiv requests (their API terms ask for 3)
    max_age_days: Number = Field(7.0, gt=0)  # how long cached responses are reused


# ---------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------


def _on_off(value: Any) -> Any:
    # YAML 1.1 reads `sandbox: off` as False and `on` as True.
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


def _optional_command(value: Any) -> Any:
    # `check: false` / `check: ""` / `--check ""` all mean "skip this step".
    if value is False or (isinstance(value, str) and not value.strip()):
        return None
    return value


OptionalCommand = Annotated[str | None, BeforeValidator(_optional_command)]


class Task(_Strict):
    name: str = ""  # empty: derived from the repo folder or URL
    repo: str  # as written: a path relative to the task file, or a git URL
    goal: str = ""  # empty: "Improve <metric>"
    build: OptionalCommand = None
    bench: str
    check: OptionalCommand = None
    profile: OptionalCommand = None  # optional profiler command; its output informs the plan
    metric: Metric
    protected: StrList = Field(default_factory=list)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    experiments: Experiments = Field(default_factory=Experiments)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    research: Research = Field(default_factory=Research)
    planner: FreeDict = Field(default_factory=dict)
    workers: Workers = Field(default_factory=Workers)
    budget_usd: Number | None = Field(None, gt=0)
    guards: Annotated[dict[str, Guard], BeforeValidator(_none_as_empty_mapping)] = Field(default_factory=dict)
    holdout: Holdout | None = None
    # on: every runtime and the build/check/bench commands run inside the write fence (the best mechanism
    # here); landlock / bubblewrap / sandbox-exec: that one; off: unconfined (warned on every run)
    sandbox: Annotated[Literal["on", "off", "landlock", "bubblewrap", "sandbox-exec"], BeforeValidator(_on_off)] = "on"

    # Where the task came from; not part of the spec, so never dumped or compared.
    source: str | None = Field(None, exclude=True)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("metric", mode="before")
    @classmethod
    def _metric_name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("timeouts", "experiments", "research", mode="before")
    @classmethod
    def _empty_block_means_defaults(cls, value: Any) -> Any:
        return _none_as_empty_mapping(value)

    @field_validator("repo", "bench")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("protected")
    @classmethod
    def _relative_globs(cls, globs: list[str]) -> list[str]:
        for glob in globs:
            if not glob.strip():
                raise ValueError("entries must not be empty")
            if os.path.isabs(glob):
                raise ValueError(f"entries are relative to the repo, got {glob!r}")
        return globs

    @field_validator("base_dir", mode="before")
    @classmethod
    def _absolute_base_dir(cls, value: Any) -> Any:
        return Path(value).expanduser().absolute() if isinstance(value, (str, Path)) else value

    @model_validator(mode="after")
    def _fill_derived_defaults(self) -> Task:
        if not self.name.strip():
            self.name = self._name_from_repo()
        if not self.goal.strip():
            self.goal = f"Improve {self.metric.name}"
        return self

    @field_validator("guards")
    @classmethod
    def _guard_names_and_directions(cls, guards: dict[str, Guard]) -> dict[str, Guard]:
        for name, guard in guards.items():
            _one_word_metric(name)
            if guard.direction is None:
                if name not in BUILTIN_METRICS:
                    raise ValueError(f"{name}: needs a direction (max or min)")
                guard.direction = "min"
            if guard.direction == "max" and guard.max_regression >= 1:
                raise ValueError(f"{name}: max_regression must be < 1 for a max metric, got {guard.max_regression}")
        return guards

    @model_validator(mode="after")
    def _guards_are_not_the_metric(self) -> Task:
        if self.metric.name in self.guards:
            raise ValueError(f"guards: {self.metric.name} is the gated metric itself")
        return self

    @model_validator(mode="after")
    def _resolve_holdout(self) -> Task:
        """Holdout files found in the commands, and the commands rewritten to reach them."""
        holdout = self.holdout
        if holdout is None:
            return self
        files = {name: str(self._local(source).resolve()) for name, source in holdout.files.items()}
        in_repo = set(self._repo_files_of_commands(self.bench, self.check))
        repo_root = None if self.repo_is_url() else self.repo_path()
        protected = pathspec.PathSpec.from_lines("gitwildmatch", self.protected)
        commands = []
        for command in holdout.commands:
            def to_holdout_dir(match: re.Match) -> str:
                word = match.group(0).strip("'\"")
                if not word or word.startswith("$") or os.path.isabs(word):
                    return match.group(0)
                source = self._local(word)
                if not source.is_file() or _git_ignores(source):
                    return match.group(0)
                if repo_root is not None and source.resolve().is_relative_to(repo_root):
                    relative = source.resolve().relative_to(repo_root).as_posix()
                    if relative in in_repo or protected.match_file(relative):
                        return match.group(0)  # a repository file the bench or check uses too: stays
                name = _holdout_name(word)
                files.setdefault(name, str(source.resolve()))
                return f'"${HOLDOUT_DIR_VAR}/{name}"'
            commands.append(re.sub(r"\S+", to_holdout_dir, command))
        for name, source in files.items():
            if not Path(source).exists():
                raise ValueError(f"holdout.files: {name} not found")
        holdout.commands, holdout.files = commands, files
        return self

    def holdout_inside_repo(self) -> list[str]:
        """Holdout files inside a local repository folder, as repo-relative paths (to keep out of it)."""
        if self.holdout is None or self.repo_is_url():
            return []
        root = self.repo_path()
        inside = []
        for source in self.holdout.files.values():
            path = Path(source).resolve()
            if path.is_relative_to(root):
                inside.append(path.relative_to(root).as_posix())
        return inside

    # -- repo ---------------------------------------------------------------

    def repo_is_url(self) -> bool:
        if self.repo.startswith(URL_PREFIXES):
            return True
        return self.repo.endswith(".git") and not self._local(self.repo).exists()

    def repo_path(self) -> Path:
        """The local repo, absolute and resolved. Only for local repos."""
        if self.repo_is_url():
            raise TaskError(f"repo {self.repo!r} is a URL, not a local path")
        return self._local(self.repo).resolve()

    def _local(self, path: str) -> Path:
        return self.base_dir / Path(path).expanduser()  # an absolute path wins over base_dir

    def _name_from_repo(self) -> str:
        if self.repo_is_url():
            last = re.split(r"[/:]", self.repo.rstrip("/"))[-1]
            return last.removesuffix(".git") or "task"
        return self.repo_path().name or "task"

    # -- protection -----------------------------------------------------------

    def protected_paths(self, repo_dir: str | Path | None = None) -> list[str]:
        """Protected globs plus the repo files that the bench and check commands name.

        Files are looked up in `repo_dir` (default: the local repo; a URL repo adds none).
        """
        paths = list(dict.fromkeys(self.protected))
        root = Path(repo_dir) if repo_dir is not None else None
        if root is None and not self.repo_is_url():
            root = self.repo_path()
        if root is None:
            return paths
        holdout = self.holdout.commands if self.holdout else []
        for file in self._repo_files_of_commands(self.bench, self.check, *holdout, root=root):
            if file not in paths:
                paths.append(file)
        return paths

    def _repo_files_of_commands(self, *commands: str | None, root: Path | None = None) -> list[str]:
        if root is None:
            if self.repo_is_url():
                return []
            root = self.repo_path()
        return [file for command in commands for file in _repo_files_named_in(command, root)]

    # -- serialization ----------------------------------------------------------

    def resolved(self) -> dict[str, Any]:
        """The spec with every default filled and local paths made absolute."""
        data = self.model_dump(mode="json")
        if not self.repo_is_url():
            data["repo"] = str(self.repo_path())
        research = data["research"]
        research["local"] = [str(self._local(folder).resolve()) for folder in self.research.local]
        research["competitors"] = [self._resolved_competitor(c) for c in self.research.competitors]
        return data

    def _resolved_competitor(self, competitor: str) -> str:
        # A competitor is a local repo when it exists or looks like a path; else GitHub owner/repo.
        if competitor.startswith(URL_PREFIXES):
            return competitor
        looks_like_path = competitor.startswith((".", "/", "~")) or self._local(competitor).exists()
        return str(self._local(competitor).resolve()) if looks_like_path else competitor

    def to_yaml(self) -> str:
        """The resolved spec as YAML: a file that loads back (from anywhere) to an equal Task."""
        header = "# Resolved research-agent task: every default filled in, local paths absolute.\n"
        return header + yaml.safe_dump(self.resolved(), sort_keys=False, allow_unicode=True)

    def fingerprint(self) -> str:
        """sha256 of what decides the measurements: repo, build, bench, check and metric.

        Renaming the task or changing rounds, runtime, research, workers or budget keeps the
        fingerprint, so a run can be resumed with different effort settings.
        """
        resolved = self.resolved()
        identity = {key: resolved[key] for key in ("repo", "build", "bench", "check", "metric")}
        if identity["metric"].get("format") is None:  # runs from before metric.format keep their fingerprint
            identity["metric"] = {k: v for k, v in identity["metric"].items() if k != "format"}
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        # Equal when they describe the same work, wherever they were loaded from.
        if not isinstance(other, Task):
            return NotImplemented
        return self.resolved() == other.resolved()


def _git_ignores(path: Path) -> bool:
    """True when the git repository around `path` ignores it (a build output, say)."""
    from . import git

    return git.call(path.parent, "check-ignore", "-q", path.name, user=True).returncode == 0


def _repo_files_named_in(command: str | None, root: Path) -> list[str]:
    """Whitespace-separated tokens of `command` that are existing files inside `root`."""
    if not command:
        return []
    root = root.resolve()
    files = []
    for token in command.split():
        token = token.strip("'\"")
        while token.startswith("./"):
            token = token[2:]
        if not token or os.path.isabs(token):
            continue
        candidate = (root / token).resolve()
        if candidate.is_file() and candidate.is_relative_to(root):
            files.append(Path(token).as_posix())
    return files


# ---------------------------------------------------------------------------
# Loading from YAML
# ---------------------------------------------------------------------------

_INTERNAL_FIELDS = ("source", "base_dir")


def load_task(path: str | Path) -> Task:
    shown = str(path)  # messages use the path as the user gave it
    text = _read_task_text(Path(path), shown)
    root, data = _parse_yaml(text, shown)
    if root is None or data is None:
        raise TaskError(f"{shown}: task file is empty (it needs at least repo, bench and metric)")
    if not isinstance(data, dict):
        raise TaskError(
            f"{shown}:{_line(root)}: task file must be a mapping of keys (repo: ..., bench: ...), "
            f"got {_describe(data)}"
        )
    _reject_duplicate_keys(root, shown)
    _reject_internal_keys(root, shown)
    base_dir = Path(os.path.abspath(path)).parent  # not resolve(): a symlinked task file keeps its folder
    try:
        return Task.model_validate({**data, "source": shown, "base_dir": base_dir})
    except ValidationError as err:
        raise TaskError(_describe_yaml_errors(err, root, shown)) from None


def _read_task_text(file: Path, shown: str) -> str:
    if file.is_dir():
        inside = next((name for name in ("task.yaml", "task.yml") if (file / name).is_file()), None)
        hint = f" (did you mean {Path(shown) / inside}?)" if inside else ""
        raise TaskError(f"{shown} is a directory, not a task file{hint}")
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"task file not found: {shown}") from None
    except UnicodeDecodeError:
        raise TaskError(f"{shown}: not a text file (invalid UTF-8)") from None
    except OSError as err:
        raise TaskError(f"{shown}: cannot read task file: {err.strerror or err}") from None


def _parse_yaml(text: str, shown: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the plain data, from a single parse."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    except yaml.YAMLError as err:
        raise TaskError(_describe_yaml_syntax_error(err, shown)) from None
    finally:
        loader.dispose()


def _describe_yaml_syntax_error(err: yaml.YAMLError, shown: str) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
    return f"{where}: invalid YAML: {squash(problem)}"


def _reject_duplicate_keys(node: yaml.Node, shown: str, loc: tuple = ()) -> None:
    # PyYAML keeps the last duplicate silently; the first one is then a setting that does nothing.
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise TaskError(f"{shown}:{_line(key)}: {_dotted(loc + (name,))}: duplicate key")
            seen.add(name)
            _reject_duplicate_keys(value, shown, loc + (name,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _reject_duplicate_keys(item, shown, loc + (index,))


def _reject_internal_keys(root: yaml.MappingNode, shown: str) -> None:
    for key, _ in root.value:
        if str(key.value) in _INTERNAL_FIELDS:
            problem = _unknown_key_problem((str(key.value),))
            raise TaskError(f"{shown}:{_line(key)}: {key.value}: {problem}")


# ---------------------------------------------------------------------------
# Turning pydantic errors into one-line messages
# ---------------------------------------------------------------------------


def _describe_yaml_errors(err: ValidationError, root: yaml.Node, shown: str) -> str:
    """The top-most problem as `file:line: field: problem`, with a count of the others."""
    problems = []
    for error in err.errors(include_url=False):
        field, problem = _field_and_problem(error)
        line = _line_of_loc(root, error["loc"])
        where = f"{shown}:{line}" if line else shown
        problems.append((line or float("inf"), f"{where}: {field}: {problem}" if field else f"{where}: {problem}"))
    problems.sort(key=lambda item: item[0])
    return problems[0][1] + _more(len(problems) - 1)


def _field_and_problem(error: dict) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return _dotted(loc[:-1]), f"missing required key '{loc[-1]}'"
    if kind in ("extra_forbidden", "invalid_key"):  # invalid_key: a non-text key such as `1: x`
        loc = loc[:-1] + (str(loc[-1]),)
        return _dotted(loc), _unknown_key_problem(loc)
    return _dotted(loc), _problem_text(error)


def _problem_text(error: dict) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    got = f", got {_describe(value)}"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)  # "must be > 0", not "> 0.0"
        return f"must be {bounds[kind]} {limit}{got}"
    if kind == "literal_error":
        return f"must be {ctx['expected']}{got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of keys{got}"
    if kind == "list_type":
        return f"must be a list{got}"
    if kind in ("string_type",):
        return f"must be a string{got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number{got}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number{got}"
    if kind == "value_error":
        return squash(str(ctx.get("error", error["msg"])))
    message = error["msg"].replace("Input should be", "must be", 1)
    return squash(message[:1].lower() + message[1:])


def _unknown_key_problem(loc: tuple) -> str:
    known = _known_keys(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key (expected one of: {', '.join(known)})" if known else "unknown key"


def _known_keys(loc: tuple) -> list[str]:
    """Field names of the model that the (key-only) `loc` leads to, e.g. ('experiments',)."""
    model: type[BaseModel] = Task
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    names = [name for name in model.model_fields if not (model is Task and name in _INTERNAL_FIELDS)]
    return [name for name in names if name != "options"]


def _line_of_loc(root: yaml.Node, loc: tuple) -> int | None:
    """1-based line of the deepest key along `loc` (None when even the first key is absent)."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            entry = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if entry is None:
                break
            key, node = entry
            line = _line(key)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = _line(node)
        else:
            break
    return line


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _more(count: int) -> str:
    return f" (and {count} more problem{'s' if count > 1 else ''})" if count else ""


# ---------------------------------------------------------------------------
# Tasks from CLI arguments
# ---------------------------------------------------------------------------

# Where each CLI option lands in the spec, so that its errors can name the option.
_CLI_OPTION_FOR_LOC = {
    ("repo",): "REPO",
    ("name",): "--name",
    ("goal",): "--goal",
    ("bench",): "--bench",
    ("build",): "--build",
    ("check",): "--check",
    ("metric",): "--metric",
    ("metric", "name"): "--metric",
    ("metric", "direction"): "--direction",
    ("runtime",): "--runtime-cmd",  # the only runtime-wide error: the command runtime lacks a command
    ("runtime", "name"): "--runtime",
    ("experiments", "parallel"): "--parallel",
    ("experiments", "rounds"): "--rounds",
    ("experiments", "repeats"): "--repeats",
    ("experiments", "max_repeats"): "--repeats",
    ("experiments", "min_effect"): "--min-effect",
}


def apply_overrides(
    task: Task,
    *,
    bench: str | None = None,
    build: str | None = None,
    check: str | None = None,
    metric: str | None = None,
    direction: str | None = None,
    runtime: str | None = None,
    runtime_cmd: str | None = None,
    parallel: int | None = None,
    rounds: int | None = None,
    repeats: int | None = None,
    min_effect: float | None = None,
) -> Task:
    """A validated copy of `task` with the CLI options that were given (None: unchanged).

    `--build ""` / `--check ""` turn that step off. `--repeats` above max_repeats raises
    max_repeats along with it.
    """
    data = task.model_dump()
    for key, value in (("bench", bench), ("build", build), ("check", check)):
        if value is not None:
            data[key] = value
    if metric is not None:
        if data["goal"] == f"Improve {data['metric']['name']}":  # a derived goal follows the metric
            data["goal"] = ""
        data["metric"]["name"] = metric
    if direction is not None:
        data["metric"]["direction"] = direction
    _override_runtime(data, runtime, runtime_cmd)
    _override_experiments(data["experiments"], parallel=parallel, rounds=rounds, repeats=repeats, min_effect=min_effect)
    return _validate_cli_task(data, source=task.source, base_dir=task.base_dir)


def _override_runtime(data: dict, runtime: str | None, runtime_cmd: str | None) -> None:
    if runtime is not None and runtime != data["runtime"]["name"]:
        data["runtime"] = {"name": runtime}  # another runtime's options would not apply
    if runtime_cmd is not None:
        data["runtime"]["command"] = runtime_cmd
        if runtime is None:
            data["runtime"]["name"] = "command"


def _override_experiments(experiments: dict, **values: Any) -> None:
    for key, value in values.items():
        if value is not None:
            experiments[key] = value
    repeats = values.get("repeats")
    if isinstance(repeats, int) and repeats > experiments["max_repeats"]:
        experiments["max_repeats"] = repeats


def task_from_repo(repo: str, **overrides: Any) -> Task:
    """A task for REPO given directly on the CLI; `overrides` are apply_overrides' options plus
    `name` and `goal`. bench and metric are required."""
    allowed = {"name", "goal", *apply_overrides.__kwdefaults__}  # apply_overrides' keyword options
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise TypeError(f"task_from_repo() got unexpected options: {', '.join(unknown)}")
    if str(repo).endswith((".yaml", ".yml")) and not Path(repo).exists():
        raise TaskError(f"task file not found: {repo}")
    bench, metric = overrides.pop("bench", None), overrides.pop("metric", None)
    if not bench or not metric:
        raise TaskError(f"{repo} needs --bench and --metric when REPO is not a task file")
    data = {"repo": str(repo), "bench": bench, "metric": {"name": metric}}
    for key in ("name", "goal"):
        value = overrides.pop(key, None)
        if value is not None:
            data[key] = value
    task = _validate_cli_task(data, source=None, base_dir=Path.cwd())
    return apply_overrides(task, **overrides)


def _validate_cli_task(data: dict, *, source: str | None, base_dir: Path) -> Task:
    try:
        return Task.model_validate({**data, "source": source, "base_dir": base_dir})
    except ValidationError as err:  # the task file was valid: the bad value came from an option (usage error)
        raise UserError(_describe_cli_error(err)) from None


def _describe_cli_error(err: ValidationError) -> str:
    error = err.errors(include_url=False)[0]
    field, problem = _field_and_problem(error)
    option = _CLI_OPTION_FOR_LOC.get(tuple(error["loc"]), field)
    return f"{option}: {problem}" if option else problem
