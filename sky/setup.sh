{#- Runs once per VM (cluster launch, pool worker, managed job): toolchain, worker, runtime CLI, build deps.
    Each step is skipped when what it installs is already there (an image with it baked in, a re-run). -#}
set -euo pipefail
# Toolchain: git, a C/C++ compiler, CMake, Python venv (Debian/Ubuntu images; other images: workers.setup).
if ! { command -v git && command -v g++ && command -v cmake && command -v curl && python3 -c 'import ensurepip, venv'; } >/dev/null 2>&1 \
   && command -v apt-get >/dev/null 2>&1; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git build-essential cmake python3-venv python3-pip curl ca-certificates >/dev/null
fi
# research-agent's worker: its own code is shipped in ~/.ra/pkg; three small dependencies here.
if ! ~/.ra/venv/bin/python -c 'import numpy, pathspec, psutil' >/dev/null 2>&1; then
  python3 -m venv ~/.ra/venv
  ~/.ra/venv/bin/pip install -q {{ worker_requirements }}
fi
{%- if runtime_setup %}
# The coding-agent runtime's CLI ({{ runtime }}).
{{ runtime_setup }}
{%- endif %}
{%- if project_setup %}
# The project's build dependencies (workers.setup).
{{ project_setup }}
{%- endif %}
