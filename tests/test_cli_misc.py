"""The read-only commands: --help (lazy imports), plan show / validate, report."""

import subprocess
import sys

from .conftest import DEMO, ROOT

HEAVY = ("sky", "openai", "github", "matplotlib", "git", "tenacity")


def test_help_imports_no_heavy_module():
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('MODULES', ' '.join(sorted(sys.modules)), file=sys.stderr))\n"
        "sys.argv = ['research-agent', '--help']\n"
        "from research_agent.cli import main\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    assert "optimize" in result.stdout and "resume" in result.stdout
    modules = result.stderr.split("MODULES", 1)[1].split()
    loaded = [m for m in modules if m.split(".")[0] in HEAVY]
    assert loaded == []


def test_plan_validate_and_show_on_the_demo_plan():
    plan = str(DEMO / "plan.md")
    ok = subprocess.run([sys.executable, "-m", "research_agent.cli", "plan", "validate", plan], capture_output=True, text=True)
    assert ok.returncode == 0 and "4 hypotheses (4 with a diff)" in ok.stdout
    shown = subprocess.run([sys.executable, "-m", "research_agent.cli", "plan", "show", plan], capture_output=True, text=True,
                           env={"COLUMNS": "160", "PATH": ""})
    assert shown.returncode == 0
    for hid in ("H1", "H2", "H3", "H4"):
        assert hid in shown.stdout
    assert "local:notes/loop-order.md" in shown.stdout
