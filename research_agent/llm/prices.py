"""Token prices for providers that do not report the cost of a call themselves.

OpenRouter reports each call's cost (`usage.cost`), and that figure is always preferred. Other
OpenAI-compatible endpoints (OpenAI, Anthropic's compatible endpoint, vLLM, Ollama, LM Studio)
report only tokens; their cost is tokens x this table. A model found in neither place has an
**unknown** cost (None) — never $0. A local model is free only when the user says so
(`prices: {llama3.1: {input: 0, output: 0}}`).

Prices are USD per 1M tokens: `{input, output}` and optionally `cached_input` (prompt tokens
served from the provider's cache). `prompt` / `completion` are accepted as aliases of `input` /
`output`. User prices (task spec `planner: {prices: ...}` or `research-agent fuse --prices FILE`)
are merged over the built-in table below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import UserError


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        cached = min(max(cached_tokens, 0), prompt_tokens) if self.cached_input is not None else 0
        fresh = prompt_tokens - cached
        return (fresh * self.input + cached * (self.cached_input or 0.0) + completion_tokens * self.output) / 1_000_000


# List prices as published when this table was written (OpenAI and Anthropic). Ids are matched
# after dropping an OpenRouter-style provider prefix (`openai/`), a date suffix (`-2024-07-18`,
# `-20250929`), and with dots read as dashes (`claude-sonnet-4.5` = `claude-sonnet-4-5`).
BUILTIN: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4-1": Price(2.00, 8.00, 0.50),
    "gpt-4-1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4-1-nano": Price(0.10, 0.40, 0.025),
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08),
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10),
    "claude-3-5-sonnet": Price(3.00, 15.00, 0.30),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30),
    "claude-sonnet-4": Price(3.00, 15.00, 0.30),
    "claude-sonnet-4-5": Price(3.00, 15.00, 0.30),
    "claude-opus-4": Price(15.00, 75.00, 1.50),
    "claude-opus-4-1": Price(15.00, 75.00, 1.50),
}


def _key(model: str) -> str:
    return model.strip().lower().replace(".", "-")


def _candidates(model: str) -> list[str]:
    exact = model.strip()
    key = _key(model)
    bare = key.split("/", 1)[1] if "/" in key else key
    if ":" in bare:  # OpenRouter variants (`:free`, `:nitro`) are priced differently: exact ids only
        return [exact, key]
    undated = re.sub(r"-(\d{4}-\d{2}-\d{2}|\d{8})$", "", bare)
    out: list[str] = []
    for candidate in (exact, key, bare, undated, re.sub(r"-latest$", "", undated)):
        if candidate not in out:
            out.append(candidate)
    return out


def parse_prices(value: Any, where: str = "prices") -> dict[str, Price]:
    """A user price table: `{model: {input, output[, cached_input]}}` (USD per 1M tokens)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where}: give a mapping of model id to {{input, output}} in USD per 1M tokens")
    table: dict[str, Price] = {}
    for model, entry in value.items():
        if isinstance(entry, Price):
            table[str(model)] = entry
            continue
        if isinstance(entry, (list, tuple)) and len(entry) in (2, 3):
            entry = dict(zip(("input", "output", "cached_input"), entry))
        if not isinstance(entry, dict):
            raise UserError(f"{where}: {model}: give {{input, output}} in USD per 1M tokens")
        entry = {{"prompt": "input", "completion": "output"}.get(k, k): v for k, v in entry.items()}
        unknown = set(entry) - {"input", "output", "cached_input"}
        if unknown or "input" not in entry or "output" not in entry:
            raise UserError(f"{where}: {model}: give input and output (USD per 1M tokens), optionally cached_input")
        try:
            numbers = {k: float(v) for k, v in entry.items() if v is not None}
        except (TypeError, ValueError):
            raise UserError(f"{where}: {model}: prices must be numbers (USD per 1M tokens)") from None
        if any(v < 0 for v in numbers.values()):
            raise UserError(f"{where}: {model}: prices must not be negative")
        table[str(model)] = Price(numbers["input"], numbers["output"], numbers.get("cached_input"))
    return table


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
