"""Task spec: loading, defaults, one-line errors with file:line, round trip, CLI overrides."""

import subprocess
import textwrap
from pathlib import Path

import pytest

from research_agent.errors import TaskError, UserError
from research_agent.task import Task, apply_overrides, load_task, task_from_repo

MINIMAL = """\
repo: .
bench: ./bench.sh
metric: gflops
"""


def write(folder: Path, text: str, name: str = "task.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(TaskError) as caught:
        load_task(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A task folder that is also the repo: task.yaml next to bench.sh."""
    folder = tmp_path / "matmul"
    folder.mkdir()
    (folder / "bench.sh").write_text("#!/bin/sh\necho METRIC gflops=1\n")
    return folder


# -- defaults -----------------------------------------------------------------


def test_minimal_task_fills_defaults(repo):
    task = load_task(write(repo, MINIMAL))
    assert task.name == "matmul"  # the repo folder's name
    assert task.goal == "Improve gflops"
    assert task.build is None and task.check is None
    assert (task.metric.name, task.metric.direction, task.metric.regex) == ("gflops", "max", None)
    assert task.timeouts.bench == 300 and task.timeouts.runtime == 1800
    assert (task.experiments.parallel, task.experiments.repeats, task.experiments.max_repeats) == (2, 5, 15)
    assert task.experiments.min_effect == pytest.approx(0.01)
    assert task.runtime.name == "patch" and task.runtime.options == {}
    assert task.workers.backend == "local"
    assert task.research.papers == 8 and task.research.forks_of is None
    assert task.planner == {} and task.budget_usd is None
    assert task.repo_path() == repo.resolve()
    assert task.base_dir == repo.absolute()


def test_metric_block_runtime_and_workers_options(repo):
    path = write(repo, """\
        repo: .
        bench: ./bench.sh
        metric: {name: latency_ms, direction: min, regex: 'latency: ([0-9.]+)'}
        runtime: {name: command, command: "aider --message-file {brief}", max_turns: 4}
        workers: {backend: skypilot, mode: spot}
        research: {weights: {papers: 2}, local: notes/}
        """)
    task = load_task(path)
    assert task.metric.direction == "min" and task.metric.regex == "latency: ([0-9.]+)"
    assert task.runtime.options == {"command": "aider --message-file {brief}", "max_turns": 4}
    assert task.workers.backend == "skypilot" and task.workers.options == {"mode": "spot"}
    assert task.research.weights == {"papers": 2} and task.research.local == ["notes/"]


def test_name_from_url_and_url_detection(tmp_path):
    task = Task(repo="https://github.com/acme/fastmm.git", bench="make bench", metric="gflops", base_dir=tmp_path)
    assert task.repo_is_url() and task.name == "fastmm"
    assert Task(repo="git@github.com:acme/x.git", bench="b", metric="m").repo_is_url()
    with pytest.raises(TaskError):
        task.repo_path()
    local = Task(repo="../src", bench="b", metric="m", base_dir=tmp_path / "tasks")
    assert not local.repo_is_url() and local.repo_path() == (tmp_path / "src").resolve()


# -- errors -------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_field(repo):
    path = write(repo, MINIMAL + "protcted: [x]\n")
    assert load_error(path) == f"{path}:4: protcted: unknown key (did you mean 'protected'?)"


def test_unknown_nested_key_names_its_line(repo):
    path = write(repo, MINIMAL + "timeouts: {build: 5}\nexperiments:\n  rounds: 2\n  paralel: 3\n")
    assert load_error(path) == f"{path}:7: experiments.paralel: unknown key (did you mean 'parallel'?)"


def test_bad_direction_names_line_and_value(repo):
    path = write(repo, "repo: .\nbench: ./bench.sh\nmetric:\n  name: gflops\n  direction: up\n")
    assert load_error(path) == f"{path}:5: metric.direction: must be 'max' or 'min', got 'up'"


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        ("experiments: {repeats: 1}", "experiments.repeats", "must be >= 2, got 1"),
        ("experiments: {repeats: 6, max_repeats: 4}", "experiments.max_repeats", "must be >= repeats (6)"),
        ("experiments: {min_effect: 1.5}", "experiments.min_effect", "must be < 1"),
        ("experiments: {parallel: yes}", "experiments.parallel", "must be a number"),
        ("timeouts: {bench: 0}", "timeouts.bench", "must be > 0"),
        ("runtime: {name: cursor}", "runtime.name", "must be 'patch', 'command', 'claude-code' or 'codex'"),
        ("runtime: {name: command}", "runtime", "needs a non-empty 'command' option"),
        ("workers: {backend: k8s}", "workers.backend", "must be 'local' or 'skypilot'"),
        ("budget_usd: -3", "budget_usd", "must be > 0"),
        ("research: {papers: many}", "research.papers", "must be a whole number"),
    ],
)
def test_validation_errors_are_one_line_with_line_number(repo, extra, field, fragment):
    path = write(repo, MINIMAL + extra + "\n")
    message = load_error(path)
    assert message.startswith(f"{path}:4: {field}: ")
    assert fragment in message


def test_regex_must_compile_and_have_a_group(repo):
    no_group = write(repo, "repo: .\nbench: b\nmetric: {name: t, regex: 'time: [0-9]+'}\n")
    assert "metric.regex: needs a capture group" in load_error(no_group)
    broken = write(repo, "repo: .\nbench: b\nmetric: {name: t, regex: 'time: ([0-9]+'}\n")
    assert load_error(broken).startswith(f"{broken}:3: metric.regex: invalid regular expression")


def test_yaml_syntax_error_reports_line_and_column(repo):
    path = write(repo, "repo: .\nbench: ./bench.sh\nmetric: gflops\ngoal: speed: up\n")
    assert load_error(path) == f"{path}:4:12: invalid YAML: mapping values are not allowed here"


def test_missing_required_keys(repo):
    path = write(repo, "repo: .\nmetric: gflops\n")
    assert load_error(path) == f"{path}: missing required key 'bench'"
    nested = write(repo, "repo: .\nbench: b\nmetric:\n  direction: min\n")
    assert load_error(nested) == f"{nested}:3: metric: missing required key 'name'"


def test_several_problems_report_the_topmost_and_count_the_rest(repo):
    path = write(repo, "repo: .\nbnech: b\nmetric: {name: m, direction: up}\n")
    assert load_error(path) == f"{path}:2: bnech: unknown key (did you mean 'bench'?) (and 2 more problems)"


def test_duplicate_and_internal_keys_are_rejected(repo):
    duplicate = write(repo, MINIMAL + "bench: other\n")
    assert load_error(duplicate) == f"{duplicate}:4: bench: duplicate key"
    internal = write(repo, MINIMAL + "base_dir: /elsewhere\n")
    assert load_error(internal).startswith(f"{internal}:4: base_dir: unknown key")


def test_file_problems(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TaskError, match=r"^task file not found: tasks/nope\.yaml$"):
        load_task("tasks/nope.yaml")
    write(tmp_path / "tasks" / "demo", MINIMAL)
    with pytest.raises(TaskError, match=r"^tasks/demo is a directory, not a task file \(did you mean tasks/demo/task\.yaml\?\)$"):
        load_task("tasks/demo")
    write(tmp_path, "# nothing yet\n", "empty.yaml")
    with pytest.raises(TaskError, match=r"^empty\.yaml: task file is empty"):
        load_task("empty.yaml")
    write(tmp_path, "- repo: .\n", "list.yaml")
    with pytest.raises(TaskError, match=r"^list\.yaml:1: task file must be a mapping"):
        load_task("list.yaml")


def test_messages_use_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "tasks", "repo: .\nbench: b\nmetric: {name: m, direction: up}\n", "x.yaml")
    with pytest.raises(TaskError, match=r"^tasks/x\.yaml:3: metric\.direction: "):
        load_task("tasks/x.yaml")


# -- serialization ------------------------------------------------------------


def test_to_yaml_round_trips_from_another_folder(repo, tmp_path):
    (repo / "notes").mkdir()
    path = write(repo, """\
        repo: .
        bench: ./bench.sh
        check: make check
        metric: {name: gflops, direction: min}
        protected: [tests/**]
        runtime: {name: claude-code, max_turns: 30}
        research: {local: [notes], competitors: [acme/fastmm, ./]}
        experiments: {repeats: 7}
        budget_usd: 12.5
        """)
    task = load_task(path)
    run_dir = tmp_path / "runs" / "r1"
    copy = load_task(write(run_dir, task.to_yaml()))
    assert copy == task
    assert copy.repo == str(repo.resolve())  # absolute, so the run dir can live anywhere
    assert copy.research.local == [str((repo / "notes").resolve())]
    assert copy.research.competitors == ["acme/fastmm", str(repo.resolve())]
    assert copy.experiments.max_repeats == 15 and copy.runtime.options == {"max_turns": 30}
    assert copy.fingerprint() == task.fingerprint()


def test_equality_and_fingerprint_notice_real_differences(repo):
    task = load_task(write(repo, MINIMAL))
    assert apply_overrides(task, bench="./bench.sh --big") != task
    assert apply_overrides(task, bench="./bench.sh --big").fingerprint() != task.fingerprint()
    assert apply_overrides(task, rounds=3) != task
    assert apply_overrides(task, rounds=3).fingerprint() == task.fingerprint()  # effort, not identity


def test_protected_paths_add_the_bench_and_check_files(repo):
    (repo / "tests").mkdir()
    (repo / "tests" / "check.py").write_text("")
    path = write(repo, MINIMAL + "check: python3 ./tests/check.py --fast\nprotected: [bench.sh, '*.h']\n")
    assert load_task(path).protected_paths() == ["bench.sh", "*.h", "tests/check.py"]
    other = write(repo, "repo: .\nbench: bash bench.sh missing.sh /bin/sh\nmetric: m\n", "other.yaml")
    assert load_task(other).protected_paths() == ["bench.sh"]


# -- CLI ----------------------------------------------------------------------


def test_apply_overrides_returns_validated_copy(repo):
    task = load_task(write(repo, MINIMAL + "check: make check\n"))
    changed = apply_overrides(task, metric="latency", direction="min", repeats=20, check="", parallel=4)
    assert (changed.metric.name, changed.metric.direction) == ("latency", "min")
    assert changed.goal == "Improve latency"  # a derived goal follows the metric
    assert changed.experiments.repeats == 20 and changed.experiments.max_repeats == 20
    assert changed.check is None and changed.experiments.parallel == 4
    assert changed.source == task.source and changed.base_dir == task.base_dir
    assert task.metric.name == "gflops" and task.check == "make check"  # original untouched

    command = apply_overrides(task, runtime_cmd="aider {brief}")
    assert command.runtime.name == "command" and command.runtime.options["command"] == "aider {brief}"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"repeats": 1}, "--repeats: must be >= 2, got 1"),
        ({"direction": "up"}, "--direction: must be 'max' or 'min', got 'up'"),
        ({"min_effect": 2.0}, "--min-effect: must be < 1, got 2.0"),
        ({"parallel": 0}, "--parallel: must be >= 1, got 0"),
        ({"runtime": "cursor"}, "--runtime: must be 'patch', 'command', 'claude-code' or 'codex', got 'cursor'"),
        ({"runtime": "command"}, "--runtime-cmd: the 'command' runtime needs a non-empty 'command' option"),
        ({"bench": " "}, "--bench: must not be empty"),
    ],
)
def test_apply_overrides_errors_name_the_cli_option(repo, options, expected):
    task = load_task(write(repo, MINIMAL))
    with pytest.raises(UserError) as caught:  # a bad option value is a usage error (exit 2), not a task file's
        apply_overrides(task, **options)
    assert str(caught.value) == expected


def test_task_from_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kernels").mkdir()
    task = task_from_repo("kernels", bench="./run.sh", metric="gflops", direction="min", rounds=2, build=None)
    assert task.source is None and task.base_dir == tmp_path.absolute()
    assert task.name == "kernels" and task.repo_path() == (tmp_path / "kernels").resolve()
    assert task.metric.direction == "min" and task.experiments.rounds == 2 and task.build is None

    with pytest.raises(TaskError, match=r"^kernels needs --bench and --metric when REPO is not a task file$"):
        task_from_repo("kernels", bench="./run.sh", metric=None)
    with pytest.raises(TaskError, match=r"^task file not found: tasks/typo\.yaml$"):
        task_from_repo("tasks/typo.yaml", bench="b", metric="m")
    with pytest.raises(UserError, match=r"^--metric: must be one word"):
        task_from_repo("kernels", bench="b", metric="giga flops")
    with pytest.raises(UserError, match=r"^--repeats: must be >= 2"):
        task_from_repo("kernels", bench="b", metric="m", repeats=0)


# -- guards and holdout -------------------------------------------------------


def test_guards_default_the_builtins_to_min_and_need_a_direction_otherwise(repo):
    task = load_task(write(repo, MINIMAL + "guards: {rss_mb: {max_regression: 0.05}, mbps: {direction: max, max_regression: 0.02}}\n"))
    assert task.guards["rss_mb"].direction == "min" and task.guards["mbps"].max_regression == pytest.approx(0.02)
    assert "guards: mbps: needs a direction (max or min)" in load_error(write(repo, MINIMAL + "guards: {mbps: {max_regression: 0.1}}\n"))
    assert "gated metric itself" in load_error(write(repo, MINIMAL + "guards: {gflops: {direction: max, max_regression: 0.1}}\n"))
    assert "max_regression" in load_error(write(repo, MINIMAL + "guards: {rss_mb: {}}\n"))
    misspelled = load_error(write(repo, MINIMAL + "guards:\n  rss_mb: {max_regresion: 0.1}\n"))
    assert ":5: guards.rss_mb" in misspelled and "(and 1 more problem)" in misspelled  # the typo, and the missing key


def test_holdout_files_are_found_in_the_commands_and_reached_through_their_folder(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitignore").write_text("prog\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for name in ("bench.sh", "prog", "bench-holdout.sh"):
        (repo / name).write_text("#!/bin/sh\n")
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "big.txt").write_text("1\n")
    task = load_task(write(repo, MINIMAL + "holdout: ./bench-holdout.sh ./prog ../inputs/big.txt --fast\n"))
    (command,) = task.holdout.commands
    # The holdout script and its input move out; the built program (ignored) and options stay.
    assert command == '"$RA_HOLDOUT_DIR/bench-holdout.sh" ./prog "$RA_HOLDOUT_DIR/__/inputs/big.txt" --fast'
    assert task.holdout.files == {"bench-holdout.sh": str((repo / "bench-holdout.sh").resolve()),
                                  "__/inputs/big.txt": str((tmp_path / "inputs" / "big.txt").resolve())}
    assert task.holdout_inside_repo() == ["bench-holdout.sh"]
    assert (task.holdout.metric, task.holdout.max_regression) == (None, 0.0)
    again = load_task(write(tmp_path / "elsewhere", task.to_yaml()))  # the resolved form loads to the same holdout
    assert again.holdout == task.holdout


def test_holdout_reusing_a_repository_file_the_bench_uses_leaves_it_in_place_and_protected(repo):
    task = load_task(write(repo, MINIMAL + "holdout: [./bench.sh 500, ./bench.sh 1000]\n"))
    assert task.holdout.commands == ["./bench.sh 500", "./bench.sh 1000"] and task.holdout.files == {}
    assert "bench.sh" in task.protected_paths()
    assert "holdout.commands: needs at least one" in load_error(write(repo, MINIMAL + "holdout: []\n"))
    assert "holdout.files: gone.txt not found" in load_error(
        write(repo, MINIMAL + "holdout: {commands: ./bench.sh, files: [gone.txt]}\n"))
