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


def test_every_registered_name_is_a_class_of_that_name_under_its_contract():
    from research_agent.backends.base import Backend
    from research_agent.runtimes.base import Runtime

    for name, kind in RUNTIMES.items():
        assert issubclass(kind.load(), Runtime) and kind.load().name == name
    for name, kind in BACKENDS.items():
        assert issubclass(kind.load(), Backend) and kind.load().name == name


def test_an_unknown_backend_on_the_command_line_is_one_line_naming_the_registered_ones(tmp_path):
    from .conftest import make_target

    _repo, task, _plan = make_target(tmp_path, {"H1": {"value.txt": "150\n"}})
    result = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(task), "--backend", "nosuch",
                             "--run-dir", "run"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == \
        f"research-agent: unknown backend 'nosuch' (available: {', '.join(BACKEND_NAMES)})"
    assert not (tmp_path / "run").exists()


def test_a_backend_with_only_the_required_methods_gets_the_defaults_of_the_contract(tmp_path):
    from research_agent.backends.base import Backend

    class Incomplete(Backend):
        name = "local"

        def provision(self, n):
            return []

    with pytest.raises(TypeError):
        Incomplete()  # baseline, run, teardown missing: refused when made, not when first called

    class Minimal(Incomplete):
        def baseline(self, commit, job):
            raise AssertionError

        def run(self, worker, job, runtime, base_commit, branch):
            raise AssertionError

        def teardown(self):
            return ["local-1"]

    said = []
    backend = Minimal(notify=said.append)
    backend.notify("hello")
    assert said == ["hello"]
    assert (backend.projected_cost(), backend.committed_cost(ahead_seconds=2.0), backend.check_budget(1.0)) == (0.0, None, None)
    assert backend.replaces_noisy_workers is False and backend.replace_worker("local-1", "noisy") is False
    assert backend.remote is False and backend.down(sweep=True) == ["local-1"] and list(backend.leftovers) == []
    runtime = backend.make_runtime("patch", {}, 600)
    assert runtime.name == "patch" and list(runtime.notices) == [] and runtime.preflight() is None


def test_the_readme_names_the_registered_runtimes_and_backends():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"`--runtime {'|'.join(RUNTIME_NAMES)}`" in readme
    assert f"`--backend {'|'.join(BACKEND_NAMES)}`" in readme
