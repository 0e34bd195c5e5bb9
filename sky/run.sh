{#- One experiment (or the baseline) on this VM: the backend-agnostic worker procedure, then the results
    printed as a checksummed bundle that research-agent reads back from the job log. -#}
set -uo pipefail
export PYTHONPATH="$HOME/.ra/pkg${PYTHONPATH:+:$PYTHONPATH}"
export RA_CACHE="$HOME/.ra/cache"
export RA_TASK_DIR="$HOME/.ra/task"   # workers.files: e.g. the benchmark script
exec "$HOME/.ra/venv/bin/python" -m research_agent.worker job.json "$HOME/.ra/out/$RA_JOB" --emit
