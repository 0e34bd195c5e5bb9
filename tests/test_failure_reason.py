"""A failed build's reason quotes the compiler's or linker's first error, not make's last line."""

import shutil

import pytest

from research_agent import proc
from research_agent.experiment import describe_failure, first_error

needs_cc = pytest.mark.skipif(not (shutil.which("make") and shutil.which("cc")), reason="needs make and cc")


@needs_cc
def test_a_link_error_is_quoted_not_makes_last_line(tmp_path):
    (tmp_path / "main.c").write_text("int LZ4_initStream(void);\nint main(void) { return LZ4_initStream(); }\n")
    (tmp_path / "Makefile").write_text("checker: main.c\n\tcc -o checker main.c\n")
    result = proc.run("make", cwd=tmp_path, timeout=60)
    assert not result.ok and result.tail(1).startswith("make: ***")  # what the reason used to be
    reason = describe_failure("build", result, 60)
    assert reason.startswith("build failed (exit 2): ") and "undefined reference to" in reason
    assert "LZ4_initStream" in reason and "make: ***" not in reason


@needs_cc
def test_a_compile_error_is_the_first_one(tmp_path):
    (tmp_path / "a.c").write_text("int f(void) { return missing_one; }\nint g(void) { return missing_two; }\n")
    result = proc.run("cc -c a.c", cwd=tmp_path, timeout=60)
    reason = describe_failure("build", result, 60)
    assert "error:" in reason and "missing_one" in reason and "missing_two" not in reason


def test_without_an_error_line_the_last_line_that_is_not_a_make_summary():
    assert first_error("./check\nFAIL: n=31 differs\nmake: *** [Makefile:9: check] Error 1\n") == "FAIL: n=31 differs"
    assert first_error("make: *** [Makefile:9: check] Error 1\n") == "make: *** [Makefile:9: check] Error 1"
    assert first_error("ld: x.o: undefined reference to `f'\ncollect2: error: ld returned 1 exit status\n") \
        == "ld: x.o: undefined reference to `f'"
    assert first_error("") == ""
