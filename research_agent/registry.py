"""How the runtime and backend registries name and find their entries: "module:attr" strings imported
only on use (so `--help` imports no backend), and one lookup whose error lists the registered names."""

from __future__ import annotations

import importlib
from typing import Mapping, TypeVar

from .errors import UserError

Entry = TypeVar("Entry")


def load(target: str):
    """The object a "module:attr" string names, imported now."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def lookup(table: Mapping[str, Entry], name: str, what: str) -> Entry:
    """The registered entry `name`, or one clear error naming the registered ones."""
    entry = table.get(name)
    if entry is None:
        raise UserError(f"unknown {what} '{name}' (available: {', '.join(table)})")
    return entry
