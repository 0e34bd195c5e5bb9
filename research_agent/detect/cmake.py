"""CMake: configure + build in build/, ctest when tests are declared, Google Benchmark executables."""

from __future__ import annotations

import re
from pathlib import Path

from . import Finding, Step, iter_files, read

BUILD = "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j 2"
_EXECUTABLE = re.compile(r"add_executable\s*\(\s*([\w.-]+)", re.IGNORECASE)


def detect(repo: Path) -> Finding | None:
    if not (repo / "CMakeLists.txt").is_file():
        return None
    lists = [p for p in iter_files(repo) if p.name == "CMakeLists.txt"]
    text = "\n".join(read(p) for p in lists)
    finding = Finding("cmake", build=Step(BUILD, "CMakeLists.txt"))
    if re.search(r"enable_testing\s*\(|add_test\s*\(", text, re.IGNORECASE):
        finding.check = Step("ctest --test-dir build --output-on-failure", "add_test/enable_testing in CMakeLists.txt")
    # (target, its folder under build/): a target declared in sub/CMakeLists.txt lands in build/sub/
    executables = [(name, p.parent.relative_to(repo).as_posix()) for p in lists for name in _EXECUTABLE.findall(read(p))]
    bench, folder = next(((e, d) for e, d in executables if "bench" in e.lower()), (None, "."))
    if bench:
        bench = bench if folder == "." else f"{folder}/{bench}"
        gbench = bool(re.search(r"benchmark::benchmark|find_package\s*\(\s*benchmark|\bbenchmark_main\b", text))
        # JSON for Google Benchmark: full-precision values, not the console table's rounded ones.
        finding.bench = Step(f"./build/{bench}" + (" --benchmark_format=json" if gbench else ""),
                             f"add_executable({bench.rsplit('/', 1)[-1]}) in {'' if folder == '.' else folder + '/'}CMakeLists.txt" + (" linking Google Benchmark" if gbench else ""),
                             guessed=True)  # where the binary lands in build/ is a guess (no RUNTIME_OUTPUT_DIRECTORY read)
        if gbench:
            finding.format = "google-benchmark"
    return finding
