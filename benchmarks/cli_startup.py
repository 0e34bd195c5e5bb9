"""Start-up cost of `research-agent --help`.

Target: median wall <= 0.3 s, and it imports none of skypilot (`sky`), openai, github.

Times `python -m research_agent.cli --help` and the installed console script, lists the modules a
`--help` run leaves in sys.modules (forbidden ones fail the target; heavy ones are shown for
information), and the biggest import costs from `python -X importtime`. Children run in the project root, so
`python -m` and `python -c` import this checkout's research_agent.

Usage: python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MEDIAN_S = 0.3
FORBIDDEN = ("sky", "openai", "github")
HEAVY = ("git", "matplotlib", "numpy", "pydantic", "yaml", "rich", "typer")
MODULES_MARKER = "MODULES-AT-EXIT:"

# Runs the CLI exactly as `python -m research_agent.cli --help` does, then lists sys.modules at exit
# (typer ends --help with SystemExit, so atexit is the one place that still runs).
LIST_MODULES = f"""
import atexit, json, runpy, sys
atexit.register(lambda: print({MODULES_MARKER!r} + json.dumps(sorted(sys.modules))))
sys.argv = ["research-agent", "--help"]
runpy.run_module("research_agent.cli", run_name="__main__")
"""


def console_script() -> str | None:
    """The venv's research-agent next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "research-agent"
    return str(beside) if beside.exists() else shutil.which("research-agent")


def time_command(argv: list[str], runs: int) -> list[float]:
    subprocess.run(argv, capture_output=True, cwd=ROOT, check=True)  # warm-up: .pyc files, disk cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return times


def modules_after_help() -> list[str]:
    result = subprocess.run([sys.executable, "-c", LIST_MODULES], capture_output=True, text=True, cwd=ROOT)
    line = next(l for l in result.stdout.splitlines() if l.startswith(MODULES_MARKER))
    return json.loads(line[len(MODULES_MARKER):])


def loaded(modules: list[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def import_times() -> list[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, nesting depth, module) for every import of a --help run."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "research_agent.cli", "--help"],
                            capture_output=True, text=True, cwd=ROOT)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((int(own), int(cumulative), depth, name.strip()))
    return rows


def print_report(timings: dict[str, list[float]], modules: list[str], imports: list[tuple[int, int, int, str]]) -> None:
    print(f"## CLI start-up — {datetime.date.today().isoformat()}\n")
    print("| command | runs | median | min | max |")
    print("|---|---:|---:|---:|---:|")
    for label, times in timings.items():
        print(f"| `{label}` | {len(times)} | {statistics.median(times):.3f} s | {min(times):.3f} s | {max(times):.3f} s |")

    print(f"\n{len(modules)} modules loaded by a --help run.\n")
    print("| module | loaded | |")
    print("|---|---|---|")
    for name in FORBIDDEN:
        print(f"| {name} | {'yes' if loaded(modules, name) else 'no'} | must not be |")
    for name in HEAVY:
        print(f"| {name} | {'yes' if loaded(modules, name) else 'no'} | information |")

    print(f"\nTop import costs (`python -X importtime`, one run; total {sum(r[0] for r in imports) / 1000:.1f} ms)\n")
    print("| top-level import | cumulative |")
    print("|---|---:|")
    for _, cumulative, _, name in sorted((r for r in imports if r[2] == 0), key=lambda r: r[1], reverse=True)[:5]:
        print(f"| {name} | {cumulative / 1000:.1f} ms |")
    print("\n| module | own time |")
    print("|---|---:|")
    for own, _, _, name in sorted(imports, key=lambda r: r[0], reverse=True)[:5]:
        print(f"| {name} | {own / 1000:.1f} ms |")

    medians = {label: statistics.median(times) for label, times in timings.items()}
    forbidden = [name for name in FORBIDDEN if loaded(modules, name)]
    ok = all(m <= TARGET_MEDIAN_S for m in medians.values()) and not forbidden
    worst = max(medians.values())
    print(f"\n{'PASS' if ok else 'FAIL'}: slowest median {worst:.3f} s (target ≤ {TARGET_MEDIAN_S} s); "
          f"forbidden modules loaded: {', '.join(forbidden) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    timings = {"python -m research_agent.cli --help": time_command([sys.executable, "-m", "research_agent.cli", "--help"], args.runs)}
    script = console_script()
    if script:
        timings["research-agent --help"] = time_command([script, "--help"], args.runs)
    else:
        print("note: no research-agent console script found; timing `python -m` only", file=sys.stderr)
    print_report(timings, modules_after_help(), import_times())


if __name__ == "__main__":
    main()
