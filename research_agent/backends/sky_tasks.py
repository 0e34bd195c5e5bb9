"""SkyPilot task files: rendered from the templates in `sky/`, validated by SkyPilot's own loader,
written to RUN_DIR/sky/<name>.yaml.

Nothing here contacts a cloud: `validate` is `sky.Task.from_yaml_str`, which only parses and checks
the schema. Secrets never appear in a rendered file: the templates only name them, and the launch
adds their values in memory (see sky_api).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from ..errors import UserError
from ..text import error_line

# What the worker imports on the VM (beyond the standard library): experiment, gate, proc.
WORKER_REQUIREMENTS = ["numpy>=1.26", "pathspec>=0.12", "psutil>=5.9"]

# How each coding-agent runtime's CLI gets onto a VM (pinned to the version the tests drive).
NODE_SETUP = (
    "if ! command -v npm >/dev/null 2>&1; then\n"
    "  curl -fsSL https://deb.nodesource.com/setup_20.x | sudo -E bash - >/dev/null\n"
    "  sudo apt-get install -y -qq nodejs >/dev/null\n"
    "fi"
)


def runtime_setup(name: str) -> str:
    """Setup lines that install the runtime's CLI on a worker ('' for runtimes that need none)."""
    from ..runtimes import runtime_kind

    kind = runtime_kind(name)
    if not kind.npm:
        return ""
    newest = kind.load().TESTED[1]  # (oldest, newest) version the tests drive
    return f"{NODE_SETUP}\n{_npm_install(kind.npm, newest)}"


def _npm_install(package: str, version: str) -> str:
    """Install the CLI at the tested version unless that version is already there (a baked image)."""
    return f"npm ls -g --depth=0 {package}@{version} >/dev/null 2>&1 || sudo npm install -g -s {package}@{version}"


def template_dir() -> Path:
    """`sky/` beside the package (a source checkout or an editable install), else the installed copy."""
    candidates = [
        Path(__file__).resolve().parents[2] / "sky",
        Path(sys.prefix) / "share" / "research-agent" / "sky",
    ]
    for candidate in candidates:
        if (candidate / "experiment.yaml").is_file():
            return candidate
    raise UserError("SkyPilot task templates (sky/experiment.yaml) not found; reinstall research-agent")


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    return env


def render(template: str, **context) -> str:
    return _environment().get_template(template).render(**context).rstrip("\n") + "\n"


def render_script(template: str, **context) -> str:
    return render(template, **context).strip("\n")


def validate(text: str, where: str) -> None:
    """SkyPilot's own loader: the schema, resources, secrets and file mounts must all parse."""
    from .sky_api import SkyNotInstalled, installed

    if not installed():
        raise SkyNotInstalled()
    import sky

    try:
        sky.Task.from_yaml_str(text)
    except Exception as error:  # SkyPilot raises ValueError, schema errors, its own exceptions
        raise UserError(f"generated SkyPilot task {where} is invalid: {error_line(error)}") from None


def write(path: Path, text: str) -> Path:
    """Validate, then write (never the other way round: an invalid task is never left on disk)."""
    validate(text, path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def ship_package(dest: Path) -> Path:
    """A copy of research_agent's source for the workers (~/.ra/pkg on the VM, put on PYTHONPATH).

    Idempotent and safe to repeat while an earlier upload reads the folder: files are replaced
    atomically and only when they differ, nothing is deleted."""
    import os

    source = Path(__file__).resolve().parents[1]
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
            continue
        target = dest / "research_agent" / path.relative_to(source)
        data = path.read_bytes()
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return dest
