"""stdlib `logging` for what is neither a ledger event nor user output: retry waits, throttle sleeps,
cache entries that could not be dropped. Quiet by default (Python's own: warnings only, on stderr);
`research-agent --debug …` or `RESEARCH_AGENT_DEBUG=1` shows every record of the package on stderr
(and, as before, the traceback of an internal error)."""

from __future__ import annotations

import logging
import os
import sys

DEBUG_ENV = "RESEARCH_AGENT_DEBUG"
FORMAT = "research-agent debug %(asctime)s %(name)s: %(message)s"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def configure(debug: bool = False) -> None:
    """Turn the debug log on for `--debug` or the environment switch; once per process."""
    if debug:
        os.environ[DEBUG_ENV] = "1"  # the traceback switch and child processes follow
    if not debug_enabled():
        return
    package = logging.getLogger("research_agent")
    if any(getattr(h, "_research_agent", False) for h in package.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._research_agent = True  # type: ignore[attr-defined]
    package.addHandler(handler)
    package.setLevel(logging.DEBUG)
