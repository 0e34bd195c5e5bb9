"""User-facing errors: each carries the documented exit code and prints as one line on stderr.

EXIT_CODES is the one table of exit codes: the error classes below take their codes from it, the
CLI uses it, and the README's "Exit codes" table is this table (a test checks they match).
"""

OK, INTERNAL, USAGE, TASK, PLAN, TARGET, BASELINE, RUN_DIR, NO_CLOUD, TEARDOWN, FENCE = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
INTERRUPTED = "130 / 143"  # 128 + SIGINT / SIGTERM

EXIT_CODES: dict[int | str, str] = {
    OK: "done (whatever the decisions), or a plan written for review",
    INTERNAL: "internal error (one line; `RESEARCH_AGENT_DEBUG=1` shows the traceback)",
    USAGE: "usage error or bad input: a mistyped option or command, an option's bad value (`--parallel 0`, "
           "`--runtime nosuch`), an agent CLI missing or its key or login missing (`claude-code`: `ANTHROPIC_API_KEY`; "
           "`codex`: `OPENAI_API_KEY`; stopped before the baseline), research found nothing to try, no API key for "
           "`--planner-models`, a provider error or an unusable answer from the planner, no GitHub token for `pr`, "
           "a branch that exists already for `apply`",
    TASK: "task spec missing, malformed or invalid (the message names file, line and field)",
    PLAN: "plan file missing, malformed or invalid (the message names the line), or not approved for `run` / "
          "`resume` of a reviewed run (without `--yes`)",
    TARGET: "target missing, not a directory, dirty without `--allow-dirty`, or not clonable; `init` (or "
            "`optimize DIR` with no task) found no benchmark, or not its metric; for `apply` / `pr`, "
            "a kept change that does not apply to your repository",
    BASELINE: "baseline failed: build, check or benchmark (nothing to compare against)",
    RUN_DIR: "run directory missing, not a run directory, or belonging to another task",
    NO_CLOUD: "no cloud to run on: `sky check` enabled no infra, the requested resources exist nowhere "
              "(SkyPilot's reason), or no worker could be launched (every launch failed, or the workers' setup "
              "failed: its exit code and last lines); resumable",
    TEARDOWN: "`research-agent down` could not remove every worker: each is printed with the `sky` command that removes it",
    FENCE: "no write fence on this machine (the line names what to install), or the fence's probe write outside "
           "succeeded; set `sandbox: off` to run unconfined",
    INTERRUPTED: "interrupted by SIGINT / SIGTERM; resumable",
}


class UserError(Exception):
    """Bad input or an unusable environment. The CLI prints `research-agent: <message>` and exits."""

    exit_code = USAGE


class TaskError(UserError):
    """The task spec is missing, malformed or invalid."""

    exit_code = TASK


class PlanError(UserError):
    """The plan file is missing, malformed or invalid. `line` is 1-based when known."""

    exit_code = PLAN

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

    exit_code = TARGET


class BaselineError(UserError):
    """The baseline build or benchmark failed: there is nothing to compare against."""

    exit_code = BASELINE


class RunDirError(UserError):
    """The run directory is missing, belongs to another task, or is unreadable."""

    exit_code = RUN_DIR


class TeardownError(UserError):
    """`research-agent down` could not remove every worker: each is printed with the `sky` command that removes it."""

    exit_code = TEARDOWN


class AgentCredentialsError(UserError):
    """An agent runtime has no key or login: stop before the baseline, not after N failed experiments
    (a usage error, like a missing agent CLI)."""

    exit_code = USAGE
