{#- One experiment (or the baseline) on this VM: the backend-agnostic worker procedure, then the results
    printed as a checksummed bundle that research-agent reads back from the job log. -#}
set -uo pipefail
export PYTHONPATH="$HOME/.ra/pkg${PYTHONPATH:+:$PYTHONPATH}"
export RA_CACHE="$HOME/.ra/cache"
export RA_TASK_DIR="$HOME/.ra/task"   # workers.files: e.g. the benchmark script
if [ -n "${RA_JOB_INPUTS:-}" ]; then
  # pool mode: a pool job gets no workdir or file_mounts, so job.json and its bundles come in this
  # env var (a base64 tar.gz) and are unpacked into a folder of this job's own
  mkdir -p "$HOME/.ra/jobs/$RA_JOB" && cd "$HOME/.ra/jobs/$RA_JOB" || exit 97
  printf '%s' "$RA_JOB_INPUTS" | base64 -d | tar -xzf - || { echo "research-agent: cannot unpack the job's inputs" >&2; exit 97; }
fi
exec "$HOME/.ra/venv/bin/python" -m research_agent.worker job.json "$HOME/.ra/out/$RA_JOB" --emit
