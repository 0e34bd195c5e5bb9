"""`research-agent init` on generated repositories of each ecosystem, `plan new`, and `optimize DIR` with no task.

The trial runs use the real tools (make, cmake + ctest, go, pytest-benchmark, cargo); a tool this machine lacks
skips its test with the reason (.ci/run installs them where it can).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from research_agent.task import load_task

from .conftest import make_repo, snapshot_of_user_repo
from .test_cli_errors import assert_one_line_error

VENV_BIN = str(Path(sys.executable).parent)  # python3 on PATH is this interpreter (it has pytest-benchmark)


def cli(*args, cwd, stdin: str | None = ""):
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, input=stdin, env=env)


def needs(tool: str):
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed here")


MAKE_REPO = {
    "Makefile": "all: prog\nprog: prog.c\n\tcc -O2 -o prog prog.c\nbench: prog\n\t./prog\ncheck: prog\n\t./prog > /dev/null\n",
    "prog.c": '#include <stdio.h>\nint main(void) { printf("METRIC ops_per_s=%d\\n", 1000); return 0; }\n',
    ".gitignore": "prog\n",
}


def init_ok(repo: Path, *extra: str) -> tuple[str, object]:
    before = snapshot_of_user_repo(repo)
    done = cli("init", str(repo), "--yes", *extra, cwd=repo.parent)
    assert done.returncode == 0, done.stderr
    after = snapshot_of_user_repo(repo)
    assert set(after) - set(before) == {"task.yaml"}  # the trial ran in a copy: nothing else of the user's changed
    assert all(after[name] == before[name] for name in before)
    return done.stdout, load_task(repo / "task.yaml")


@needs("make")
@needs("cc")
def test_make_repo(tmp_path):
    repo = make_repo(tmp_path / "mk", MAKE_REPO)
    out, task = init_ok(repo)
    assert (task.build, task.bench, task.check) == ("make", "make -s bench", "make check")
    assert (task.metric.name, task.metric.direction, task.metric.format) == ("ops_per_s", "max", None)
    assert task.repo_path() == repo.resolve()
    text = (repo / "task.yaml").read_text()
    assert "# found: Makefile target 'bench'" in text and "found: `METRIC ops_per_s=` in prog.c" in text
    assert "ops_per_s = 1000 — the metric parses" in text and "guessed from the name" in text
    assert "ops_per_s = 1000" in out


@needs("cmake")
@needs("c++")
def test_cmake_repo_with_ctest_and_a_bench_executable(tmp_path):
    repo = make_repo(tmp_path / "cm", {
        "CMakeLists.txt": "cmake_minimum_required(VERSION 3.16)\nproject(demo CXX)\nenable_testing()\n"
                          "add_executable(unit unit.cc)\nadd_test(NAME unit COMMAND unit)\n"
                          "add_subdirectory(perf)\n",
        "perf/CMakeLists.txt": "add_executable(bench_sum bench_sum.cc)\n",
        "unit.cc": "int main() { return 0; }\n",
        "perf/bench_sum.cc": '#include <cstdio>\nint main() { std::printf("METRIC seconds=%.3f\\n", 0.25); }\n',
    })
    out, task = init_ok(repo)
    assert task.build.startswith("cmake -S . -B build") and task.check == "ctest --test-dir build --output-on-failure"
    assert task.bench == "./build/perf/bench_sum"  # declared in perf/CMakeLists.txt
    assert (task.metric.name, task.metric.direction) == ("seconds", "min")
    assert "seconds = 0.25 — the metric parses" in out


GBENCH = """#include <benchmark/benchmark.h>
#include <string>
static void BM_StringCopy(benchmark::State& state) {
  std::string x = "hello";
  for (auto _ : state) { std::string copy(x); benchmark::DoNotOptimize(copy); }
}
BENCHMARK(BM_StringCopy);
BENCHMARK_MAIN();
"""


@needs("cmake")
@needs("c++")
@pytest.mark.skipif(not Path("/usr/include/benchmark/benchmark.h").exists(), reason="Google Benchmark (libbenchmark-dev) is not installed")
def test_cmake_google_benchmark_json_is_read_without_a_wrapper(tmp_path):
    repo = make_repo(tmp_path / "gb", {
        "CMakeLists.txt": "cmake_minimum_required(VERSION 3.16)\nproject(gb CXX)\nfind_package(benchmark REQUIRED)\n"
                          "add_executable(bench_strings bench.cc)\ntarget_link_libraries(bench_strings benchmark::benchmark)\n",
        "bench.cc": GBENCH,
    })
    out, task = init_ok(repo)
    assert task.bench == "./build/bench_strings --benchmark_format=json"
    assert (task.metric.name, task.metric.direction, task.metric.format) == ("geomean", "min", "google-benchmark")
    assert "the metric parses" in out


@needs("go")
def test_go_repo(tmp_path):
    repo = make_repo(tmp_path / "gomod", {
        "go.mod": "module example.com/fib\n\ngo 1.19\n",
        "fib.go": "package fib\n\nfunc Fib(n int) int {\n\tif n < 2 {\n\t\treturn n\n\t}\n\treturn Fib(n-1) + Fib(n-2)\n}\n",
        "fib_test.go": "package fib\n\nimport \"testing\"\n\nfunc BenchmarkFib10(b *testing.B) {\n\tfor i := 0; i < b.N; i++ {\n"
                       "\t\tFib(10)\n\t}\n}\n\nfunc TestFib(t *testing.T) {\n\tif Fib(10) != 55 {\n\t\tt.Fatal(Fib(10))\n\t}\n}\n",
    })
    out, task = init_ok(repo)
    assert task.bench == "go test -run '^$' -bench . -benchmem ./..." and task.check == "go test ./..."
    # the geometric mean of every benchmark's ns/op (here one)
    assert (task.metric.name, task.metric.direction, task.metric.format) == ("geomean", "min", "go")
    assert "the metric parses" in out


def test_python_repo_with_pytest_benchmark(tmp_path):
    pytest.importorskip("pytest_benchmark")
    repo = make_repo(tmp_path / "py", {
        "pyproject.toml": "[project]\nname = 'sorter'\nversion = '0'\n",
        "sorter.py": "def sort(xs):\n    return sorted(xs)\n",
        "tests/test_sort.py": "from sorter import sort\n\n\ndef test_sort_speed(benchmark):\n"
                              "    assert benchmark(sort, list(range(1000, 0, -1)))[0] == 1\n",
        "tests/conftest.py": "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent))\n",
    })
    out, task = init_ok(repo)
    assert "--benchmark-json" in task.bench and task.metric.format == "pytest-benchmark"
    assert task.check == "python3 -m pytest -q -p no:cacheprovider --benchmark-disable"
    assert task.metric.direction == "min" and "the metric parses" in out


def test_cargo_repo_with_criterion_without_trial(tmp_path):
    # criterion needs crates.io and minutes of compiling: detection only (the criterion parser has its own tests)
    repo = make_repo(tmp_path / "rs", {
        "Cargo.toml": "[package]\nname = \"fib\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dev-dependencies]\n"
                      "criterion = \"0.5\"\n\n[[bench]]\nname = \"fib\"\nharness = false\n",
        "src/lib.rs": "pub fn fib(n: u64) -> u64 { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\n",
        "benches/fib.rs": "use criterion::{criterion_group, criterion_main, Criterion};\n",
    })
    out, task = init_ok(repo, "--no-trial")
    assert (task.build, task.bench, task.check) == ("cargo build --release", "cargo bench", "cargo test --release")
    assert (task.metric.name, task.metric.format) == ("geomean", "criterion")
    assert "not run (--no-trial)" in (repo / "task.yaml").read_text()


@needs("npm")
def test_npm_scripts_and_a_bench_script_metric_found_in_the_output(tmp_path):
    repo = make_repo(tmp_path / "js", {
        "package.json": '{"name": "x", "scripts": {"bench": "sh perf/run.sh", "test": "true"}}\n',
        "perf/run.sh": 'name=req_per_s\necho "METRIC $name=42"\n',  # no literal `METRIC x=` to read: the trial tells
    })
    out, task = init_ok(repo)
    assert (task.bench, task.check, task.metric.name, task.metric.direction) == ("npm run --silent bench", "npm test --silent", "req_per_s", "max")
    assert "found in the output: the first METRIC line of the trial run" in (repo / "task.yaml").read_text()


def test_nothing_found_is_one_line_listing_what_to_add(tmp_path):
    repo = make_repo(tmp_path / "bare", {"README.md": "hello\n"})
    result = cli("init", str(repo), "--yes", cwd=tmp_path)
    assert_one_line_error(result, 5, "no benchmark found: add a `bench` Make target, a bench.sh", "METRIC name=value")
    assert not (repo / "task.yaml").exists()


def test_not_a_terminal_without_yes_writes_nothing(tmp_path):
    repo = make_repo(tmp_path / "mk", MAKE_REPO)
    result = cli("init", str(repo), "--no-trial", cwd=tmp_path, stdin="")
    assert_one_line_error(result, 2, "not written: stdin is not a terminal, pass --yes")
    assert "bench:  make -s bench" in result.stdout and not (repo / "task.yaml").exists()


def test_an_existing_task_file_is_not_overwritten(tmp_path):
    repo = make_repo(tmp_path / "mk", {**MAKE_REPO, "task.yaml": "mine\n"})
    result = cli("init", str(repo), "--yes", cwd=tmp_path)
    assert_one_line_error(result, 2, "task.yaml exists: not overwritten")
    assert (repo / "task.yaml").read_text() == "mine\n"


def test_a_failing_trial_is_said_and_the_task_still_written(tmp_path):
    repo = make_repo(tmp_path / "mk", {**MAKE_REPO, "prog.c": MAKE_REPO["prog.c"].replace("return 0", "return 3")})
    done = cli("init", str(repo), "--yes", "--output", str(tmp_path / "tasks" / "mk.yaml"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "tasks" / "mk.yaml").read_text()
    assert "the metric is not confirmed: trial bench `make -s bench` failed" in text
    assert "repo: ../mk " in text and load_task(tmp_path / "tasks" / "mk.yaml").repo_path() == repo.resolve()


def test_plan_new_writes_a_plan_that_validates(tmp_path):
    repo = make_repo(tmp_path / "mk", MAKE_REPO)
    assert cli("init", str(repo), "--yes", "--no-trial", cwd=tmp_path).returncode == 0
    done = cli("plan", "new", "p.md", "--task", str(repo / "task.yaml"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "p.md").read_text()
    assert "metric: ops_per_s\ndirection: max\n" in text and "### H1: Example" in text and "<!--" in text
    checked = cli("plan", "validate", "p.md", cwd=tmp_path)
    assert checked.returncode == 0 and "1 hypotheses" in checked.stdout and "status draft" in checked.stdout
    assert cli("plan", "new", cwd=tmp_path).returncode == 0 and cli("plan", "validate", "plan.md", cwd=tmp_path).returncode == 0
    assert_one_line_error(cli("plan", "new", "p.md", cwd=tmp_path), 2, "p.md exists: not overwritten")


PLAN_DIFF = """
```diff
--- a/prog.c
+++ b/prog.c
@@ -1,2 +1,2 @@
 #include <stdio.h>
-int main(void) { printf("METRIC ops_per_s=%d\\n", 1000); return 0; }
+int main(void) { printf("METRIC ops_per_s=%d\\n", 2000); return 0; }
```
"""


@needs("make")
@needs("cc")
def test_optimize_a_directory_without_a_task_detects_then_runs(tmp_path):
    repo = make_repo(tmp_path / "mk", MAKE_REPO)
    before = snapshot_of_user_repo(repo)
    # offline, no notes: the baseline is measured, research finds nothing, and the one line says so
    bare = cli("optimize", str(repo), "--offline", "--run-dir", "r1", cwd=tmp_path)
    assert bare.returncode == 2, bare.stderr
    assert f"no task file in {repo}: benchmarking with `make -s bench` (Makefile target 'bench'), metric ops_per_s" in bare.stderr
    assert "research-agent init" in bare.stderr and "Traceback" not in bare.stderr
    assert bare.stderr.strip().splitlines()[-1].startswith("research-agent: ")
    # with a plan from `plan new`, filled in with a diff: a run, the change kept
    assert cli("plan", "new", "plan.md", cwd=tmp_path).returncode == 0
    plan = (tmp_path / "plan.md").read_text().replace("- files: src/kernel.c", "- files: prog.c")
    (tmp_path / "plan.md").write_text(plan.replace("(keep the id format H1, H2, ...).\n", "(keep the id format H1, H2, ...).\n" + PLAN_DIFF))
    done = cli("optimize", str(repo), "--plan", "plan.md", "--run-dir", "r2", "--repeats", "3", "--parallel", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    status = cli("status", "r2", "--json", cwd=tmp_path)
    assert '"kept"' in status.stdout
    assert snapshot_of_user_repo(repo) == before


def test_a_bench_script_beside_a_makefile_takes_the_build_and_check_from_make(tmp_path):
    from research_agent.detect import detect

    repo = make_repo(tmp_path / "mixed", {"Makefile": "all:\n\ttrue\ntest:\n\ttrue\n", "bench.sh": "echo METRIC gflops=1\n",
                                          "go.mod": "module x\n", "x_test.go": "package x\n"})
    found = detect(repo)
    assert (found.bench.command, found.build.command, found.check.command) == ("./bench.sh", "make", "make test")
    assert (found.metric, found.direction, found.format) == ("gflops", "max", None)
    assert found.notes == []  # go.mod without Benchmark functions is no benchmark


@pytest.mark.parametrize("name, direction", [("ops_per_s", "max"), ("gflops", "max"), ("ns_per_op", "min"),
                                             ("latency_ms", "min"), ("seconds", "min"), ("MB/s", "max"),
                                             ("score", "max"), ("rss_mb", "min"), ("cycles_per_byte", "min")])
def test_direction_guessed_from_the_metric_name(name, direction):
    from research_agent.detect import guess_direction

    assert guess_direction(name) == direction


def test_pyperf_script_detected(tmp_path):
    # a pyperf run spawns about 20 worker processes per benchmark: detection only here; the parser reads
    # real pyperf output in test_metric_formats
    repo = make_repo(tmp_path / "pp", {"perf/bench_sort.py": "import pyperf\n\nrunner = pyperf.Runner()\n"
                                       "runner.timeit('sort_100', stmt='sorted(range(100))')\n"})
    out, task = init_ok(repo, "--no-trial")
    assert (task.bench, task.metric.name, task.metric.format, task.check) == (
        "python3 perf/bench_sort.py --quiet", "geomean", "pyperf", None)


@needs("make")
@needs("cc")
def test_optimize_a_directory_uses_the_task_file_init_wrote(tmp_path):
    repo = make_repo(tmp_path / "mk", MAKE_REPO)
    assert cli("init", str(repo), "--yes", "--no-trial", cwd=tmp_path).returncode == 0
    (repo / "task.yaml").write_text((repo / "task.yaml").read_text().replace("goal: Improve ops_per_s", "goal: Faster prog"))
    done = cli("research", str(repo), "--offline", "--run-dir", "r", cwd=tmp_path)  # baseline, then research finds nothing
    assert f"task: {repo / 'task.yaml'}" in done.stderr and "no task file" not in done.stderr
    assert "Faster prog" in (tmp_path / "r" / "task.yaml").read_text()


@needs("make")
def test_a_bench_printing_no_metric_is_one_line(tmp_path):
    repo = make_repo(tmp_path / "mk", {"Makefile": "bench:\n\t@echo all done\n"})
    result = cli("init", str(repo), "--yes", cwd=tmp_path)
    assert_one_line_error(result, 5, "found a benchmark (`make -s bench`: Makefile target 'bench') but not its metric",
                          "the trial run printed no metric;", "METRIC name=value")
    assert not (repo / "task.yaml").exists()
