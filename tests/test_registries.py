"""Runtime and backend names live in one registry each; the task spec, the CLI and the factories read them."""

import subprocess
import sys
import typing

import pytest

from research_agent.backends import BACKEND_NAMES, BACKENDS
from pydantic import ValidationError

from research_agent.errors import UserError
from research_agent.runtimes import RUNTIME_NAMES, RUNTIMES, make_runtime
from research_agent.task import RuntimeSpec, Task, Workers


def test_the_task_spec_accepts_exactly_the_registered_names():
    assert typing.get_args(RuntimeSpec.model_fields["name"].annotation) == RUNTIME_NAMES == tuple(RUNTIMES)
    assert typing.get_args(Workers.model_fields["backend"].annotation) == BACKEND_NAMES == tuple(BACKENDS)
    with pytest.raises(ValidationError, match="'patch', 'command', 'claude-code' or 'codex'"):
        Task(repo=".", bench="./bench.sh", metric={"name": "ops"}, runtime={"name": "aider"})


def test_an_unknown_runtime_names_the_registered_ones():
    with pytest.raises(UserError, match=r"unknown runtime 'aider' \(available: patch, command, claude-code, codex\)"):
        make_runtime("aider", {}, 60)
    assert type(make_runtime("patch", {}, 600)).__name__ == "PatchRuntime"


def test_the_cli_help_lists_the_registered_names():
    shown = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", "--help"], capture_output=True,
                           text=True, env={"COLUMNS": "200", "PATH": ""})
    assert shown.returncode == 0
    assert " | ".join(RUNTIME_NAMES) in shown.stdout and " | ".join(BACKEND_NAMES) in shown.stdout
