"""The one retry helper: exponential backoff with jitter on `tenacity`, honouring `Retry-After`.

An attempt asks for another by raising `Transient` (carrying the wait the server asked for, if any)
or an exception the caller's `retry_if` accepts. The wait before attempt n+1 is the server's
`Retry-After` when it gave one (capped at `after_cap`), else `base * 2**(n-1)` capped at `cap`,
times a jitter in [1 - jitter, 1 + jitter] so that clients that failed together do not come back
together. Each wait is logged (logger `research_agent.retry`, shown with `--debug`) and handed to
`on_wait` for callers that also record it (the LLM client writes an `llm_retry` ledger event).
When the attempts are used up, the last exception is raised as is (never tenacity's RetryError).

`sleep` is injectable so that a caller with its own interruptible sleep (the SkyPilot backend's,
which returns at Ctrl-C) can use it.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import Any, Callable

import tenacity

from .text import one_line

logger = logging.getLogger(__name__)

# HTTP's own "try again later" answers: too many requests, and the server errors a retry can cure.
# One set for every HTTP client of the package (research sources and the LLM client).
HTTP_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Transient(Exception):
    """Raised inside an attempt: this failure may pass, try again (after `after` seconds, if the server said)."""

    def __init__(self, reason: str, after: float | None = None, value: Any = None):
        super().__init__(reason)
        self.reason = reason
        self.after = after
        self.value = value  # what the last attempt got (e.g. the 503 response), for the caller's message


def retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date); None when absent or unreadable."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Wait(tenacity.wait.wait_base):
    def __init__(self, base: float, cap: float, after_cap: float, jitter: float):
        self.base, self.cap, self.after_cap, self.jitter = base, cap, after_cap, jitter

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        after = getattr(error, "after", None)
        if isinstance(after, (int, float)):
            return min(max(0.0, float(after)), self.after_cap)
        backoff = min(self.base * 2 ** (retry_state.attempt_number - 1), self.cap)
        return max(0.0, backoff * random.uniform(1 - self.jitter, 1 + self.jitter))


def _options(what: str, attempts: int, base: float, cap: float, after_cap: float, jitter: float,
             retry_if: Callable[[BaseException], bool] | None,
             on_wait: Callable[[int, float, BaseException], None] | None) -> dict:
    def retryable(error: BaseException) -> bool:
        return isinstance(error, Transient) or (retry_if is not None and retry_if(error))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.info("%s: %s; retry %d of %d in %.2f s", what, (one_line(error, 200) or type(error).__name__) if error is not None else "failed", state.attempt_number,
                    attempts - 1, wait)
        if on_wait is not None and error is not None:
            on_wait(state.attempt_number, wait, error)

    return dict(stop=tenacity.stop_after_attempt(max(1, attempts)), wait=_Wait(base, cap, after_cap, jitter),
                retry=tenacity.retry_if_exception(retryable), before_sleep=before_sleep, reraise=True)


def retrying(what: str, *, attempts: int, base: float = 1.0, cap: float = 60.0, after_cap: float = 60.0,
             jitter: float = 0.25, retry_if: Callable[[BaseException], bool] | None = None,
             on_wait: Callable[[int, float, BaseException], None] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> tenacity.Retrying:
    """`for attempt in retrying(...): with attempt: ...`, or `retrying(...)(fn, *args)`; `what` names the
    call in the log. `attempts` counts the first try."""
    return tenacity.Retrying(sleep=sleep, **_options(what, attempts, base, cap, after_cap, jitter, retry_if, on_wait))


def aretrying(what: str, *, attempts: int, base: float = 1.0, cap: float = 60.0, after_cap: float = 60.0,
              jitter: float = 0.25, retry_if: Callable[[BaseException], bool] | None = None,
              on_wait: Callable[[int, float, BaseException], None] | None = None) -> tenacity.AsyncRetrying:
    """The same for coroutines: `async for attempt in aretrying(...): with attempt: ...` (waits with asyncio.sleep)."""
    return tenacity.AsyncRetrying(**_options(what, attempts, base, cap, after_cap, jitter, retry_if, on_wait))
