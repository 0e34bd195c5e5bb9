"""The layer shared by the coding-agent CLI runtimes (Claude Code, Codex): their options, binary and
version, prices and cost cap, `doctor`, the constraints every agent gets, and key redaction.

Each CLI's file keeps only what differs: its flags, its environment, how it reports what it did.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from .. import proc
from ..errors import UserError
from ..prices import Price, PriceTable, is_one_price, parse_price, parse_prices
from ..text import one_line
from .base import Runtime

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_version_cache: dict[str, str | None] = {}


# ---------------------------------------------------------------------------
# Binary discovery and version
# ---------------------------------------------------------------------------


def find_binary(configured: str | None, default_name: str, install_hint: str) -> Path:
    """The agent binary: the `binary` option (a path or a name on PATH) or `default_name` on PATH.

    Missing → `UserError` with one line naming the install command.
    """
    wanted = str(configured) if configured else default_name
    expanded = os.path.expanduser(wanted)
    if os.sep in expanded:
        path = Path(expanded)
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
        raise UserError(f"agent binary not found or not executable: {wanted} (install it with: {install_hint})")
    found = shutil.which(expanded)
    if found is None:
        raise UserError(f"'{wanted}' not found on PATH (install it with: {install_hint}, or set runtime: {{binary: PATH}})")
    return Path(found)


def binary_version(binary: Path | str, timeout: float = 15.0, env: dict[str, str] | None = None) -> str | None:
    """`<binary> --version` as "X.Y.Z", or None when it cannot be run or parsed. Cached per path."""
    key = str(binary)
    if key in _version_cache:
        return _version_cache[key]
    try:
        result = proc.capture([key, "--version"], env={**os.environ, **(env or {})}, timeout=timeout)
        match = _VERSION.search(result.text) if result.returncode == 0 else None
        version = match.group(0) if match else None
    except OSError:
        version = None
    _version_cache[key] = version
    return version


def version_tuple(version: str) -> tuple[int, int, int]:
    match = _VERSION.search(version)
    if not match:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part) for part in match.groups())  # type: ignore[return-value]


def version_notice(tool: str, version: str | None, tested: tuple[str, str]) -> str | None:
    """A one-line warning when `version` is outside the tested range (inclusive), else None."""
    low, high = tested
    if version is None:
        return f"warning: could not read the {tool} version; research-agent was tested with {low}–{high}"
    if not version_tuple(low) <= version_tuple(version) <= version_tuple(high):
        return f"warning: {tool} {version} is outside the tested range {low}–{high}; its output format may differ"
    return None


# ---------------------------------------------------------------------------
# What the agent is told, and what never leaves it
# ---------------------------------------------------------------------------


def constraints_text(workdir: Path | str) -> str:
    """Rules appended to the agent's system prompt (the brief itself holds the task-specific ones)."""
    return (
        "You are running unattended inside a research-agent experiment. Rules:\n"
        f"- Work only inside the current working directory ({workdir}); never create, edit or delete files outside it.\n"
        "- Make the change the hypothesis in the brief describes, keep it minimal, then stop.\n"
        "- Do not touch the protected paths the brief lists, the benchmark, the tests or the build flags unless the brief allows it.\n"
        "- Do not commit, push, or change git configuration; research-agent commits your changes itself.\n"
        "- Do not try to reach the network.\n"
        "- Running the build and the checks to verify your change is fine; keep commands short.\n"
    )


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret value (8 characters or more) replaced: transcripts and logs never hold a key."""
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    return text


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------


def _positive_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError("must be a positive number")
    return value


PositiveNumber = Annotated[float, BeforeValidator(_positive_number)]  # an option that must be a number above zero


class AgentOptions(BaseModel):
    """The task spec's `runtime:` options every agent CLI takes; a CLI's subclass adds its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    binary: str | None = None  # path or name of the executable (default: the CLI's name on PATH)
    model: str | None = None  # default: the CLI's own default
    max_usd: PositiveNumber = 2.0  # per-experiment spending cap, checked on the running cost
    prices: Any = None  # one price for the run's model, or {model: price}; merged over research_agent.prices
    unsafe: bool = False  # the CLI without its own permission checks / sandbox: disposable hosts only
    extra_args: list[str] = []  # more CLI arguments (a list, or one shell-quoted string)

    @field_validator("model", "binary", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if value == "" else value

    @field_validator("extra_args", mode="before")
    @classmethod
    def _arguments(cls, value):
        if value is None:
            return []
        if isinstance(value, str):
            return shlex.split(value)
        if not isinstance(value, list):
            raise ValueError("must be a list of arguments or one shell-quoted string")
        return [str(arg) for arg in value]

    @classmethod
    def parse(cls, options: dict, runtime: str) -> "AgentOptions":
        """`options` checked: anything wrong is one line naming the runtime and the option."""
        unknown = sorted(set(options) - set(cls.model_fields))
        if unknown:
            raise UserError(f"unknown {runtime} runtime option(s): {', '.join(unknown)} (known: {', '.join(sorted(cls.model_fields))})")
        try:
            return cls(**options)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            raise UserError(one_line(f"{runtime} option {where}: {message}, got {first.get('input')!r}", 300)) from None


# ---------------------------------------------------------------------------
# The runtime layer
# ---------------------------------------------------------------------------


class AgentCLIRuntime(Runtime):
    """What every agent-CLI runtime does the same way: options, binary, version notice, prices, doctor."""

    name: ClassVar[str]
    BINARY: ClassVar[str]  # the executable's name on PATH
    INSTALL: ClassVar[str]  # the install command named when it is missing
    TESTED: ClassVar[tuple[str, str]]  # the versions tested (inclusive)
    KEY_VARIABLES: ClassVar[tuple[str, ...]]  # enough to run, for `doctor`
    KEY_HINT: ClassVar[str]  # doctor's note when none of them is set
    DOCTOR_NEEDS_KEY: ClassVar[bool] = True  # False: a login of the CLI's own may stand in
    DEFAULT_PRICE: ClassVar[Price]  # the price of a model no table knows: high, so the cap trips early
    PRICE_ORDER: ClassVar[tuple[str, ...]] = ("input", "output", "cached_input")  # a price given as a list
    Options: ClassVar[type[AgentOptions]] = AgentOptions

    def __init__(self, options: dict | None = None, timeout: float = 1800, fence=None):
        self.options = dict(options or {})
        self.settings = self.Options.parse(self.options, self.name)
        self.timeout = float(timeout)
        self.fence = fence  # research_agent.fence.Fence, or None (sandbox: off)
        self.notices: list[str] = []  # one-line warnings for the orchestrator to print (and log as ledger events)
        self.binary = self.find(self.settings.binary)
        self.version = binary_version(self.binary)
        self.notice(version_notice(self.BINARY, self.version, self.TESTED))
        self.model = self.settings.model
        self.max_usd = float(self.settings.max_usd)
        self.unsafe = self.settings.unsafe
        self.extra_args = list(self.settings.extra_args)
        self.price_override, user_prices = self._parse_prices(self.settings.prices)
        self.prices = PriceTable(user_prices)
        if self.model and not self.price_for(self.model)[1]:
            self.notice(self.price_notice(self.model))

    # --- hooks a CLI may override ----------------------------------------------------------

    @classmethod
    def find(cls, configured: str | None) -> Path:
        return find_binary(configured, cls.BINARY, cls.INSTALL)

    @classmethod
    def price_defaults(cls, input: float, output: float, given: dict) -> dict:
        """Prices for the fields a user left out (none by default: cached tokens then cost `input`)."""
        return {}

    # --- notices and prices ----------------------------------------------------------------

    def notice(self, line: str | None) -> None:
        if line and line not in self.notices:
            self.notices.append(line)

    def _parse_prices(self, value) -> tuple[Price | None, dict[str, Price]]:
        """The `prices` option: one price for the run's model (whatever it is), or per-model prices."""
        where = f"{self.name} option prices"
        how = {"order": self.PRICE_ORDER, "defaults": self.price_defaults}
        if value is None:
            return None, {}
        if is_one_price(value):
            return parse_price(value, where, **how), {}
        return None, parse_prices(value, where, **how)

    def price_for(self, model: str | None) -> tuple[Price, bool]:
        """(price, known) for `model`: the `prices` option, the table, or the conservative default."""
        if self.price_override is not None:
            return self.price_override, True
        found = self.prices.lookup(model) if model and not str(model).startswith("<") else None
        return (found, True) if found is not None else (self.DEFAULT_PRICE, False)

    def price_notice(self, model: str | None) -> str:
        what = f"model '{model}'" if model else f"{self.name}'s default model"
        p = self.DEFAULT_PRICE
        return (f"{self.name}: no price known for {what}: its cost is an estimate at ${p.input:g}/${p.output:g} per 1M "
                "input/output tokens, and the cap is enforced on that (set runtime: {prices: ...} to fix)")

    def cap_reason(self, spent: float) -> str:
        return f"agent exceeded the {_usd(self.max_usd)} cap ({_usd(spent)} spent)"

    # --- doctor ----------------------------------------------------------------------------

    @classmethod
    def doctor_info(cls, options: dict | None = None) -> dict:
        """What `research-agent doctor` shows: never a key itself, only whether one is set."""
        info = {"runtime": cls.name, "binary": None, "version": None,
                "key_present": any(os.environ.get(name) for name in cls.KEY_VARIABLES), "usable": False, "note": ""}
        try:
            binary = cls.find((options or {}).get("binary"))
        except UserError:
            info["note"] = f"not installed: {cls.INSTALL}"
            return info
        info["binary"] = str(binary)
        info["version"] = binary_version(binary)
        notes = []
        if info["version"] is None:
            notes.append(f"{binary} --version failed")
        else:
            notes.append(version_notice(cls.BINARY, info["version"], cls.TESTED))
        if not info["key_present"]:
            notes.append(cls.KEY_HINT)
        info["usable"] = info["version"] is not None and (info["key_present"] or not cls.DOCTOR_NEEDS_KEY)
        info["note"] = "; ".join(note for note in notes if note) or f"ok (tested with {cls.TESTED[0]}–{cls.TESTED[1]})"
        return info


def _usd(value: float) -> str:
    return f"${value:.2f}" if value >= 0.1 else f"${value:.3g}"
