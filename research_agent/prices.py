"""Token prices: the one price type and the one built-in table, for the LLM client and the agent CLIs.

OpenRouter reports each call's cost (`usage.cost`), and that figure is always preferred; so is the
`total_cost_usd` Claude Code reports at the end of a run. Everywhere else the cost is tokens x this
table. What a model found in no table costs is the caller's choice: the LLM client says **unknown**
(None, never $0); an agent CLI's running cost cap uses a deliberately high default, so an unknown
model can only make the cap trip early, never late. A local model is free only when the user says so
(`prices: {llama3.1: {input: 0, output: 0}}`).

Prices are USD per 1M tokens: `input`, `output`, and optionally `cached_input` (prompt tokens read
from the provider's cache) and `cache_write` (prompt tokens written to it, Anthropic's 5-minute
cache). `prompt` / `completion` are accepted as aliases of `input` / `output`. User prices (task spec
`planner: {prices: ...}`, `research-agent fuse --prices FILE`, an agent runtime's `prices` option)
are merged over the built-in table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import UserError


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. Cached and cache-written tokens without a price of their own cost `input`."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0) -> float:
        """USD for one call. `input_tokens` counts every prompt token, the cached and cache-written ones
        included (OpenAI's convention; Anthropic's `input_tokens` excludes them: add them in)."""
        input_tokens = max(input_tokens, 0)
        cached = min(max(cached_tokens, 0), input_tokens)
        written = min(max(cache_write_tokens, 0), input_tokens - cached)
        fresh = input_tokens - cached - written
        cached_price = self.input if self.cached_input is None else self.cached_input
        write_price = self.input if self.cache_write is None else self.cache_write
        return (fresh * self.input + cached * cached_price + written * write_price
                + max(output_tokens, 0) * self.output) / 1_000_000


def anthropic(input: float, output: float, cache_read: float | None = None) -> Price:
    """Anthropic's tiers: cache writes at 1.25x input, cache reads at a tenth of it unless listed."""
    return Price(input, output, input / 10 if cache_read is None else cache_read, input * 1.25)


# List prices as published when this table was written. OpenAI's are (input, output, cached input);
# Anthropic's are the ones in Claude Code 2.1.332's own model catalog (so an agent's running estimate
# matches the `total_cost_usd` the CLI reports; for haiku-5-5 the long-prompt price, an upper bound).
# Ids are matched after dropping a provider prefix (`openai/`), a context tag (`[1m]`), a Bedrock
# version (`-v1:0`), a date suffix (`-2024-07-18`, `-20250929`) and `-latest`, with dots read as
# dashes (`claude-sonnet-4.5` = `claude-sonnet-4-5`, `gpt-4.1` = `gpt-4-1`).
BUILTIN: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4-1": Price(2.00, 8.00, 0.50),
    "gpt-4-1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4-1-nano": Price(0.10, 0.40, 0.025),
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-codex": Price(1.25, 10.00, 0.125),
    "gpt-5-1": Price(1.25, 10.00, 0.125),
    "gpt-5-1-codex": Price(1.25, 10.00, 0.125),
    "gpt-5-1-codex-max": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-1-codex-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "codex-mini-latest": Price(1.50, 6.00, 0.375),
    "claude-3-haiku": anthropic(0.25, 1.25, 0.03),
    "claude-3-5-haiku": anthropic(0.8, 4),
    "claude-haiku-4-5": anthropic(1, 5),
    "claude-haiku-5-5": anthropic(0.5, 2.5, 0.05),
    "claude-3-5-sonnet": anthropic(3, 15),
    "claude-3-7-sonnet": anthropic(3, 15),
    "claude-sonnet-4": anthropic(3, 15),
    "claude-sonnet-4-0": anthropic(3, 15),
    "claude-sonnet-4-5": anthropic(3, 15),
    "claude-sonnet-4-6": anthropic(3, 15),
    "claude-sonnet-5": anthropic(2, 10),
    "claude-sonnet-5-5": anthropic(2, 10, 0.1),
    "claude-3-opus": anthropic(15, 75),
    "claude-opus-4": anthropic(15, 75),
    "claude-opus-4-0": anthropic(15, 75),
    "claude-opus-4-1": anthropic(15, 75),
    "claude-opus-4-5": anthropic(5, 25),
    "claude-opus-4-6": anthropic(5, 25),
    "claude-opus-4-7": anthropic(5, 25),
    "claude-opus-4-8": anthropic(5, 25),
    "claude-opus-5": anthropic(5, 25),
    "claude-opus-5-5": anthropic(4, 20, 0.2),
    "claude-fable-5": anthropic(10, 50, 1),
    "claude-fable-5-1": anthropic(10, 50, 0.25),
    "claude-fable-5-2": anthropic(8, 40, 0.2),
    "claude-mythos-5": anthropic(10, 50, 1),
    "claude-mythos-5-1": anthropic(10, 50, 0.25),
    "claude-mythos-5-2": anthropic(8, 40, 0.2),
}


def _key(model: str) -> str:
    return model.strip().lower().replace(".", "-")


def _candidates(model: str) -> list[str]:
    exact = model.strip()
    key = re.sub(r"\[.*?\]$", "", _key(model))  # Claude Code's context tag: `claude-opus-5-5[1m]`
    key = re.sub(r"-v\d+(:\d+)?$", "", key)  # a Bedrock version: `-v1:0`
    bare = key.split("/", 1)[1] if "/" in key else key
    if ":" in bare:  # OpenRouter variants (`:free`, `:nitro`) are priced differently: exact ids only
        return [exact, key]
    undated = re.sub(r"-(\d{4}-\d{2}-\d{2}|\d{8})$", "", bare)
    out: list[str] = []
    for candidate in (exact, key, bare, undated, re.sub(r"-latest$", "", undated)):
        if candidate not in out:
            out.append(candidate)
    return out


_FIELDS = ("input", "output", "cached_input", "cache_write")
_ALIASES = {"prompt": "input", "completion": "output", "cache_read": "cached_input"}


def parse_price(entry: Any, where: str = "prices", order: tuple[str, ...] = ("input", "output", "cached_input"),
                defaults=None) -> Price:
    """One user price: `{input, output[, cached_input, cache_write]}` in USD per 1M tokens, or a list in
    `order`. `defaults(input, output, given)` fills the fields left out (Anthropic's cache tiers)."""
    if isinstance(entry, Price):
        return entry
    if isinstance(entry, (list, tuple)) and 2 <= len(entry) <= len(order):
        entry = dict(zip(order, entry))
    if not isinstance(entry, dict):
        raise UserError(f"{where}: give {{input, output}} in USD per 1M tokens")
    entry = {_ALIASES.get(k, k): v for k, v in entry.items()}
    if set(entry) - set(_FIELDS) or "input" not in entry or "output" not in entry:
        raise UserError(f"{where}: give input and output (USD per 1M tokens), optionally cached_input / cache_write")
    try:
        numbers = {k: float(v) for k, v in entry.items() if v is not None}
    except (TypeError, ValueError):
        raise UserError(f"{where}: prices must be numbers (USD per 1M tokens)") from None
    if any(v < 0 for v in numbers.values()):
        raise UserError(f"{where}: prices must not be negative")
    if defaults is not None:
        numbers = {**defaults(numbers["input"], numbers["output"], numbers), **numbers}
    return Price(numbers["input"], numbers["output"], numbers.get("cached_input"), numbers.get("cache_write"))


def parse_prices(value: Any, where: str = "prices", **how) -> dict[str, Price]:
    """A user price table: `{model: {input, output[, cached_input]}}` (USD per 1M tokens)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where}: give a mapping of model id to {{input, output}} in USD per 1M tokens")
    return {str(model): parse_price(entry, f"{where}: {model}", **how) for model, entry in value.items()}


def is_one_price(value: Any) -> bool:
    """True when a `prices` option is one price (for the run's model), not a table of them."""
    return isinstance(value, (list, tuple)) or (isinstance(value, dict) and bool({"input", "output"} & set(value)))


class PriceTable:
    """The built-in prices with the user's merged over them (user entries win, exact ids first)."""

    def __init__(self, user: dict | None = None, builtin: bool = True):
        self.user = parse_prices(user)
        self.builtin = dict(BUILTIN) if builtin else {}
        self._user_keys = {_key(k): v for k, v in self.user.items()}

    def lookup(self, *models: str | None) -> Price | None:
        """The price of the first of `models` (requested id, then the id the provider answered with) found."""
        for model in models:
            if not model:
                continue
            for candidate in _candidates(model):
                for table in (self.user, self._user_keys, self.builtin):
                    if candidate in table:
                        return table[candidate]
        return None
