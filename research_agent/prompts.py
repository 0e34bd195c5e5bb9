"""Prompt templates: jinja2 files in a `prompts/` folder beside the module that renders them.

The templates hold the prose and its layout; the code computes the values (and quotes fetched text
as `<untrusted>` blocks before it reaches a template). Rendering is plain text: no autoescaping, an
undefined name is an error, block tags leave no blank line behind (`trim_blocks`, `lstrip_blocks`)
and a template's final newline is not part of the prompt.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def _environment(folder: str):
    import jinja2  # lazily: only a planning or fusion call renders a prompt

    return jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=False, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


def render(beside: str, name: str, **values) -> str:
    """`prompts/<name>` next to the module file `beside` (pass `__file__`), filled in with `values`."""
    return _environment(str(Path(beside).parent / "prompts")).get_template(name).render(**values)
