#!/bin/bash
# down.sh (run as `scripts/local-slurm.sh down [--purge]`) — stop what up.sh started, and nothing else.
#
# Stops, by the PID files in $BASE/run (never by process name): sshd, slurmd, slurmctld, munged.
# Before that: `sky api stop` of the SkyPilot venv if up.sh started the API server (that also ends
# the consolidated managed-jobs controllers), after printing whatever SkyPilot launched that is still
# there (clusters, managed jobs) and Slurm jobs still queued, so a leak is visible.
#
#   LOCAL_SLURM_KEEP_SKY=1   leave the SkyPilot API server running
#   --purge                  also remove what up.sh wrote outside $BASE (profile.d snippet, its
#                            authorized_keys line, ~/.slurm/config and ~/.sky/config.yaml if it wrote
#                            them, /etc/slurm/slurm.conf) and what SkyPilot's node setup added to
#                            $HOME (~/.sky_ssh_rc, its `source` line in ~/.bashrc, its key in
#                            authorized_keys). Packages stay installed.
set -uo pipefail

BASE=${LOCAL_SLURM_BASE:-${TMPDIR:-/tmp}/local-slurm}
RUN=$BASE/run
TAG="local-slurm-recipe"
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
SKY_VENV=${LOCAL_SLURM_SKY_VENV:-$HERE/../../.venv}
PURGE=0
[ "${1:-}" = "--purge" ] && PURGE=1

log() { printf '[local-slurm-stop] %s\n' "$*"; }

# ------------------------------------------------ SkyPilot API server first
if [ "${LOCAL_SLURM_KEEP_SKY:-0}" != 1 ] && [ -f "$RUN/sky-api.ours" ] && [ -x "$SKY_VENV/bin/sky" ]; then
  if curl -s -o /dev/null --max-time 3 http://127.0.0.1:46580/api/health; then
    left=$("$SKY_VENV/bin/sky" status 2>/dev/null | awk '/^Clusters/{f=1;next} /^Managed jobs/{f=0} f && NF && !/^NAME/ && !/No existing clusters/')
    [ -n "$left" ] && log "WARNING: SkyPilot clusters still exist (sky down them first):" && echo "$left"
    log "sky api stop"
    "$SKY_VENV/bin/sky" api stop || true
  fi
  rm -f "$RUN/sky-api.ours"
  # SkyPilot's SSH ControlMaster connections to the login node outlive the API server: close each
  # through its own control socket (not by process name).
  for sock in "${TMPDIR:-/tmp}"/sky_ssh_*/*/*; do
    [ -S "$sock" ] && ssh -O exit -S "$sock" localslurm >/dev/null 2>&1 || true
  done
fi
if command -v squeue >/dev/null && [ -f "$RUN/slurmctld.pid" ] && kill -0 "$(cat "$RUN/slurmctld.pid")" 2>/dev/null; then
  jobs=$(squeue -h 2>/dev/null)
  [ -n "$jobs" ] && log "WARNING: Slurm jobs still queued/running (they die with slurmd):" && echo "$jobs"
fi

# ------------------------------------------------ daemons, by PID file
stop_pid() {   # name pidfile
  local name=$1 pf=$2 pid
  [ -f "$pf" ] || { log "$name: no pid file"; return; }
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then log "$name did not exit; kill -9 $pid"; kill -9 "$pid"; fi
  else
    log "$name (pid $pid) not running"
  fi
  rm -f "$pf"
}
stop_pid sshd      "$RUN/sshd.pid"       # existing SkyPilot SSH sessions (children) end with their clients
stop_pid slurmd    "$RUN/slurmd.pid"
stop_pid slurmctld "$RUN/slurmctld.pid"
stop_pid munged    "$RUN/munged.pid"
rm -f /run/munge/munged.pid

# ------------------------------------------------ optional purge
if [ "$PURGE" = 1 ]; then
  log "purging files written outside $BASE"
  rm -f /etc/profile.d/zz-local-slurm.sh
  # Our client key, and the key SkyPilot's node setup appended (its client key
  # under ~/.sky/clients/*/ssh/sky-key.pub).
  for pub in "$BASE/ssh/id_ed25519.pub" $HOME/.sky/clients/*/ssh/sky-key.pub; do
    [ -f "$pub" ] && [ -f $HOME/.ssh/authorized_keys ] || continue
    key=$(cut -d' ' -f2 "$pub")
    grep -vF "$key" $HOME/.ssh/authorized_keys > $HOME/.ssh/authorized_keys.tmp || true
    cat $HOME/.ssh/authorized_keys.tmp > $HOME/.ssh/authorized_keys; rm -f $HOME/.ssh/authorized_keys.tmp
  done
  grep -q "$TAG" ~/.slurm/config 2>/dev/null && rm -f ~/.slurm/config
  grep -q "$TAG" ~/.sky/config.yaml 2>/dev/null && rm -f ~/.sky/config.yaml
  grep -q "$TAG" /etc/slurm/slurm.conf 2>/dev/null && rm -f /etc/slurm/slurm.conf
  # SkyPilot's node setup (the "node" is this machine's root account):
  rm -f $HOME/.sky_ssh_rc
  if [ -f $HOME/.bashrc ] && grep -qx "source ~/.sky_ssh_rc" $HOME/.bashrc; then
    sed -i '/^source ~\/.sky_ssh_rc$/d' $HOME/.bashrc
  fi
  log "left in place: ~/.sky_clusters, ~/.sky_provision (SkyPilot's sbatch scripts/logs),"
  log "  ~/sky_logs, ~/.sky state, /tmp/uv_cache_0, installed packages"
fi
log "done"
