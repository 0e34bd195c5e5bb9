"""User-facing errors: each carries the documented exit code and prints as one line on stderr."""


class UserError(Exception):
    """Bad input or an unusable environment. The CLI prints `research-agent: <message>` and exits."""

    exit_code = 2


class TaskError(UserError):
    """The task spec is missing, malformed or invalid."""

    exit_code = 3


class PlanError(UserError):
    """The plan file is missing, malformed or invalid. `line` is 1-based when known."""

    exit_code = 4

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        elif line:
            where = f"line {line}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class TargetError(UserError):
    """The target repository is missing, dirty, or cannot be snapshotted."""

    exit_code = 5


class BaselineError(UserError):
    """The baseline build or benchmark failed: there is nothing to compare against."""

    exit_code = 6


class RunDirError(UserError):
    """The run directory is missing, belongs to another task, or is unreadable."""

    exit_code = 7


class AgentCredentialsError(UserError):
    """An agent runtime has no key or login: stop before the baseline, not after N failed experiments."""

    exit_code = 10
