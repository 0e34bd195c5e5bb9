"""Benchmark tools' own output read as metrics (metric.format), on samples in each tool's format."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from research_agent import metric_formats
from research_agent.errors import TaskError
from research_agent.experiment import Commands, run_bench
from research_agent.task import load_task

SAMPLES = Path(__file__).parent / "fixtures" / "bench_outputs"


def parsed(format: str, sample: str) -> dict[str, float]:
    return metric_formats.parse((SAMPLES / sample).read_text(encoding="utf-8"), format)


def geomean(*values: float) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def test_criterion_short_and_long_names_in_nanoseconds():
    values = parsed("criterion", "criterion.txt")
    assert values["fib_20"] == pytest.approx(26_251)  # the estimate, the middle of [low est high]
    assert values["parse/a_rather_long_benchmark_name"] == pytest.approx(1_015_000)  # name on the line above
    assert values["geomean"] == pytest.approx(geomean(26_251, 1_015_000))
    assert set(values) == {"fib_20", "parse/a_rather_long_benchmark_name", "geomean"}


def test_criterion_bencher_lines():
    output = "test fib_20 ... bench:      26,251 ns/iter (+/- 1,002)\ntest parse ... bench:   1,015,000 ns/iter (+/- 9)\n"
    assert metric_formats.parse(output, "criterion") == pytest.approx(
        {"fib_20": 26_251, "parse": 1_015_000, "geomean": geomean(26_251, 1_015_000)})


def test_go_bench_median_of_count_and_extra_units():
    values = parsed("go", "go.txt")
    assert values["BenchmarkFib10"] == pytest.approx(398.0)  # -count=3: the median, -8 suffix dropped
    assert values["BenchmarkEncode/small"] == 1302
    assert values["BenchmarkEncode/small.MB_per_s"] == pytest.approx(98.31)
    assert values["BenchmarkEncode/small.allocs_per_op"] == 2
    assert values["geomean"] == pytest.approx(geomean(398.0, 1302))  # ns/op only


def test_pytest_benchmark_json_after_the_console_table():
    values = parsed("pytest-benchmark", "pytest_benchmark.txt")
    assert values["test_sorted[100]"] == pytest.approx(3300)  # median 3.3e-06 s
    assert values["test_sorted[1000]"] == pytest.approx(51_400)
    assert values["test_sorted[100].min"] == pytest.approx(3100)
    assert values["geomean"] == pytest.approx(geomean(3300, 51_400))


def test_google_benchmark_console_skips_stddev_and_cv():
    values = parsed("google-benchmark", "google_benchmark_console.txt")
    assert values["BM_StringCreation"] == pytest.approx(5.12)
    assert values["BM_StringCreation.cpu"] == pytest.approx(5.11)
    assert values["BM_memcpy/64"] == pytest.approx(2.66)
    assert values["BM_Sort/1024_mean"] == pytest.approx(21_400)
    assert not any(name.endswith(("_stddev", "_cv")) for name in values)


def test_google_benchmark_json():
    values = parsed("google-benchmark", "google_benchmark.json")
    assert values == pytest.approx({"BM_StringCreation": 5.1234, "BM_StringCreation.cpu": 5.1102,
                                    "BM_Sort/1024_mean": 21_400, "BM_Sort/1024_mean.cpu": 21_300,
                                    "geomean": geomean(5.1234, 21_400)})


def test_pyperf_named_and_timeit():
    # pyperf.txt: a real pyperf 2.10 Runner script's output (two timeit benchmarks, --fast --quiet)
    assert parsed("pyperf", "pyperf.txt") == pytest.approx(
        {"sort_100": 11_200, "sort_1000": 170_000, "geomean": geomean(11_200, 170_000)})
    assert parsed("pyperf", "pyperf_timeit.txt") == pytest.approx({"timeit": 10.2, "geomean": 10.2})


def test_output_of_another_tool_gives_nothing():
    for format in metric_formats.FORMATS:
        assert metric_formats.parse("METRIC x=1\nall good\n", format) == {}


def write_task(tmp_path: Path, metric: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "bench.sh").write_text(f"cat {SAMPLES / 'go.txt'}\necho 'METRIC lines=7'\n")
    task = tmp_path / "task.yaml"
    task.write_text(f"repo: repo\nbench: sh bench.sh\nmetric:\n{metric}")
    return task


def test_a_task_with_a_format_benchmarks_without_a_wrapper(tmp_path):
    task = load_task(write_task(tmp_path, "  name: BenchmarkFib10\n  direction: min\n  format: go\n"))
    commands = Commands(build=None, check=None, bench=task.bench, metric=task.metric.name, regex=None,
                        direction="min", build_timeout=60, check_timeout=60, bench_timeout=60, format=task.metric.format)
    run = run_bench(task.repo_path(), commands, tmp_path / "bench.log")
    assert run.failure is None and run.value == pytest.approx(398.0)
    assert run.metrics["lines"] == 7 and "BenchmarkEncode/small" in run.metrics  # METRIC lines still count
    # without the format the same output has no such metric: a failed run, never a zero
    plain = run_bench(task.repo_path(), Commands(**{**commands.__dict__, "format": None}), tmp_path / "bench.log")
    assert plain.failure == "no metric 'BenchmarkFib10' in the output"


def test_unknown_format_and_format_with_regex_are_task_errors(tmp_path):
    with pytest.raises(TaskError, match=r"task.yaml:5: metric.format: unknown format 'criterio' \(did you mean 'criterion'"):
        load_task(write_task(tmp_path, "  name: x\n  format: criterio\n"))
    with pytest.raises(TaskError, match="regex or format, not both"):
        load_task(write_task(tmp_path, "  name: x\n  format: go\n  regex: 'x ([0-9]+)'\n"))


def test_fingerprint_without_format_is_unchanged(tmp_path):
    # runs started before metric.format existed resume: their fingerprint has no format key
    task = load_task(write_task(tmp_path, "  name: x\n"))
    import hashlib, json
    resolved = task.resolved()
    identity = {key: resolved[key] for key in ("repo", "build", "bench", "check", "metric")}
    identity["metric"].pop("format")
    assert task.fingerprint() == hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_asv_time_benchmarks_only():
    assert parsed("asv", "asv.txt") == pytest.approx(
        {"benchmarks.TimeSuite.time_keys": 1_230_000, "benchmarks.TimeSuite.time_range": 4560,
         "geomean": geomean(1_230_000, 4560)})


def test_worker_job_specs_carry_the_format_and_older_specs_still_load():
    from research_agent.worker import _commands

    older = {"build": None, "check": None, "bench": "go test -bench .", "metric": "geomean", "regex": None,
             "direction": "min", "build_timeout": 60, "check_timeout": 60, "bench_timeout": 60}
    assert _commands({"commands": older}).format is None  # a job.json written before metric.format
    assert _commands({"commands": {**older, "format": "go"}}).format == "go"
