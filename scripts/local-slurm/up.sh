#!/bin/bash
# up.sh (run as `scripts/local-slurm.sh up`) — a single-node Slurm cluster on 127.0.0.1, reachable
# over SSH, set up so SkyPilot's Slurm infra provisions real clusters on it with no cloud account
# and no internet (only the package registries: apt for Slurm, PyPI for skypilot[slurm] and uv).
# Adapted from the team's local-slurm recipe; the project's real-SkyPilot test tier runs on it.
#
# Idempotent: installs nothing twice, rewrites its configs, starts only daemons that are not
# running (by their PID files), and starts the local SkyPilot API server only if none answers.
# `scripts/local-slurm.sh down` stops exactly the PIDs recorded here.
#
# Layout (everything under $BASE, default $TMPDIR/local-slurm):
#   run/*.pid           PID files of the daemons this script started; run/sky-api.ours when it started the API server
#   log/                slurmctld/slurmd/munged/sshd logs
#   state/ spool/       slurmctld StateSaveLocation, slurmd spool
#   lib/bindlo.so       LD_PRELOAD shim: wildcard binds -> 127.0.0.1 (src/bindlo.c)
#   ssh/                sshd config + host key, client key used by SkyPilot
#   node/               offline stand-ins for the SkyPilot node runtime (uv installer, curl, sudo)
# Outside $BASE it writes: /etc/slurm/slurm.conf, /etc/munge/munge.key (if absent),
# /etc/profile.d/zz-local-slurm.sh (inert outside our sshd's sessions), one line in
# ~/.ssh/authorized_keys, ~/.slurm/config and ~/.sky/config.yaml (each only if absent or written by
# this script before), and two files into the SkyPilot venv's site-packages (local_slurm_offline.{py,pth}).
# SkyPilot's own node setup then adds, since the "node" is this account: ~/.sky_ssh_rc + a `source`
# line in ~/.bashrc, its key in authorized_keys, ~/.sky_clusters/, ~/.sky_provision/, /tmp/<cluster>/.
#
# Needs root (it installs packages and runs the Slurm daemons) on Debian/Ubuntu.
# Env:  LOCAL_SLURM_BASE  LOCAL_SLURM_SSH_PORT=2222  LOCAL_SLURM_NAME=localslurm
#       LOCAL_SLURM_SKY_VENV (default: the project's .venv)  LOCAL_SLURM_NO_SUDO_SHIM=0
set -euo pipefail

BASE=${LOCAL_SLURM_BASE:-${TMPDIR:-/tmp}/local-slurm}
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)   # this recipe's folder (src/ beside it)
PROJECT=$(cd "$HERE/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "local-slurm: run as root (it installs packages and starts slurmctld/slurmd/munged/sshd)" >&2; exit 1; }
SSH_PORT=${LOCAL_SLURM_SSH_PORT:-2222}
SKY_SLURM_NAME=${LOCAL_SLURM_NAME:-localslurm}   # the "Host" in ~/.slurm/config = infra slurm/<name>
NODE=$(hostname -s)                               # Slurm node name = real hostname (resolves to 127.0.0.1 via /etc/hosts)
RUN=$BASE/run LOG=$BASE/log
TAG="local-slurm-recipe"

log() { printf '[local-slurm] %s\n' "$*"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The node name must resolve to loopback, or Slurm/SkyPilot would talk to eth0.
if [ "$(getent hosts "$NODE" | awk '{print $1}' | head -1)" != "127.0.0.1" ]; then
  echo "hostname $NODE does not resolve to 127.0.0.1 (see /etc/hosts); refusing" >&2; exit 1
fi

# ---------------------------------------------------------------- 1. packages
need=()
for p in slurm-wlm munge openssh-server rsync gcc curl; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  apt-get update -q
  # policy-rc.d on this image keeps the packages from starting their own daemons.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

mkdir -p "$RUN" "$LOG" "$BASE/state" "$BASE/spool/slurmd" "$BASE/lib" "$BASE/src" "$BASE/ssh" "$BASE/node/bin"

# ----------------------------------------------------- 2. loopback bind shim
# slurmctld cannot be told which address to listen on (NoInAddrAny does not
# apply to it) and SkyPilot's skylet listens on 0.0.0.0:46590+.  The shim is
# preloaded into the Slurm daemons and into every session of our sshd, so every
# listening socket of this setup ends up on 127.0.0.1.
SHIM=$BASE/lib/bindlo.so
# Rebuilt when src/bindlo.c is newer than the library.
if [ ! -f "$SHIM" ] || [ "$HERE/src/bindlo.c" -nt "$SHIM" ]; then
  gcc -O2 -shared -fPIC -o "$SHIM" "$HERE/src/bindlo.c" -ldl
  chmod 755 "$SHIM"
fi

# ------------------------------------------------------------------ 3. munge
# The Debian package creates /etc/munge/munge.key; create one if it is missing.
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
if ! alive "$RUN/munged.pid"; then
  log "starting munged"
  # Runs as user munge (as the init script would); unix socket only, no TCP.
  # Log stays in /var/log/munge: munged refuses log/pid paths in dirs other
  # users can write to. It writes its own pid file, copied to $RUN.
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$RUN/munged.pid"
fi
munge -n | unmunge >/dev/null

# ------------------------------------------------------------------ 4. slurm
CPUS=$(nproc)
# RealMemory a bit under the total so slurmd does not drain the node with
# "Low RealMemory" (slurmd -C reports slightly less than MemTotal).
MEM_MB=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
chown slurm:slurm "$BASE/state" "$LOG"
mkdir -p /etc/slurm
old_conf_sum=$(md5sum /etc/slurm/slurm.conf 2>/dev/null | cut -d' ' -f1 || true)
cat > /etc/slurm/slurm.conf <<EOF
# Written by $BASE/local-slurm.sh ($TAG). Single node, loopback only.
ClusterName=localslurm
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# Every Slurm daemon/client except slurmctld binds to the address its name
# resolves to (127.0.0.1) instead of INADDR_ANY; slurmctld gets the LD_PRELOAD shim.
CommunicationParameters=NoInAddrAny
# linuxproc: no cgroup setup needed in this VM (cgroup v1 is mounted, but
# proctrack/cgroup would also need cgroup.conf and a delegated hierarchy).
# SkyPilot copes with either; with linuxproc it does not assume cgroup reaping.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
# cons_tres + CR_Core_Memory: CPUs and memory are consumable, so two 1-CPU
# SkyPilot clusters share the 2-CPU node and SkyPilot's --mem is honoured
# (SkyPilot checks SelectTypeParameters for MEMORY before it passes --mem).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# With memory consumable, a job without --mem would get the WHOLE node's memory
# and block every other job (a plain "srun hostname" hangs behind a SkyPilot
# cluster). Give such jobs 1 GB per CPU instead.
DefMemPerCPU=1024
SchedulerType=sched/backfill
ReturnToService=2
# No accounting daemon (slurmdbd); SkyPilot only needs sinfo/squeue/scontrol/sbatch/srun/scancel.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/slurmd
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# A cancelled job's steps get 10s between SIGTERM and SIGKILL (default 30s), so
# sky down / scancel finish faster.
KillWait=10
# Keep finished jobs visible to squeue/scontrol for 5 min (SkyPilot's status
# refresh reads job states).
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

if alive "$RUN/slurmctld.pid" && [ "$old_conf_sum" != "$(md5sum /etc/slurm/slurm.conf | cut -d' ' -f1)" ]; then
  log "slurm.conf changed: scontrol reconfigure"
  scontrol reconfigure
  sleep 2
fi
if ! alive "$RUN/slurmctld.pid"; then
  log "starting slurmctld"
  # Daemonizes and writes SlurmctldPidFile itself. -c: start with a clean
  # state (no stale jobs from a previous run of this recipe).
  LD_PRELOAD=$SHIM /usr/sbin/slurmctld -c
  for _ in $(seq 100); do alive "$RUN/slurmctld.pid" && break; sleep 0.1; done
fi
if ! alive "$RUN/slurmd.pid"; then
  log "starting slurmd"
  LD_PRELOAD=$SHIM /usr/sbin/slurmd
  for _ in $(seq 100); do alive "$RUN/slurmd.pid" && break; sleep 0.1; done
fi
for _ in $(seq 60); do
  state=$(sinfo -h -N -o '%t' 2>/dev/null | head -1 || true)
  case "$state" in idle|mix|alloc) break;; esac
  sleep 1
done
# A node that was down (e.g. after a restart) comes back with ReturnToService=2,
# but resume it explicitly in case it was drained.
case "$(sinfo -h -N -o '%t' | head -1)" in idle|mix|alloc) ;; *) scontrol update nodename="$NODE" state=resume || true;; esac
sinfo

# ------------------------------------------------------------ 5. sshd (login node)
SSHD=$BASE/ssh
[ -f "$SSHD/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$SSHD/host_ed25519"
[ -f "$SSHD/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "$TAG" -f "$SSHD/id_ed25519"
mkdir -p $HOME/.ssh && chmod 700 $HOME/.ssh && touch $HOME/.ssh/authorized_keys && chmod 600 $HOME/.ssh/authorized_keys
grep -qF "$(cut -d' ' -f2 "$SSHD/id_ed25519.pub")" $HOME/.ssh/authorized_keys || cat "$SSHD/id_ed25519.pub" >> $HOME/.ssh/authorized_keys
mkdir -p /run/sshd && chmod 755 /run/sshd     # privilege separation dir
# This machine reaches PyPI through a TLS-inspecting proxy whose CA is in the
# system bundle; sshd sessions do not inherit this shell's environment, and uv
# (bundled webpki roots) fails with "invalid peer certificate: UnknownIssuer"
# unless SSL_CERT_FILE points at the system bundle.  Pass the CA variables on.
CA_ENV=""
for v in SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE PIP_CERT NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO; do
  val=${!v:-}
  if [ -z "$val" ] && [ "$v" = SSL_CERT_FILE ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    val=/etc/ssl/certs/ca-certificates.crt
  fi
  [ -n "$val" ] && CA_ENV="$CA_ENV $v=$val"
done
cat > "$SSHD/sshd_config" <<EOF
# Written by $BASE/local-slurm.sh ($TAG): the "login node" for SkyPilot.
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $SSHD/host_ed25519
PidFile $RUN/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
# SkyPilot port-forwards to the node's skylet; allow it (loopback only anyway).
AllowTcpForwarding local
GatewayPorts no
X11Forwarding no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
# Every command SkyPilot runs on the login node (and through srun, on the node)
# gets: the bind shim (skylet's gRPC server on 127.0.0.1, not 0.0.0.0), and
# $BASE/node/bin first on PATH (offline uv installer, see section 6).
# SkyPilot runs its commands with "bash --login", and Debian's /etc/profile
# resets PATH, so PATH is also re-prepended by /etc/profile.d/zz-local-slurm.sh,
# which acts only when LOCAL_SLURM_NODE_BIN is set, i.e. only in these sessions.
# SKYPILOT_DISABLE_USAGE_COLLECTION: the node runtime would otherwise try to
# send telemetry to usage-v2.skypilot.co.
SetEnv SKYPILOT_DISABLE_USAGE_COLLECTION=1 LD_PRELOAD=$SHIM LOCAL_SLURM_NODE_BIN=$BASE/node/bin PATH=$BASE/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin$CA_ENV
EOF
cat > /etc/profile.d/zz-local-slurm.sh <<'EOF'
# local-slurm-recipe: inert unless the session comes from the local Slurm login
# sshd (its sshd_config sets LOCAL_SLURM_NODE_BIN). /etc/profile resets PATH for
# login shells; put the offline helpers (uv installer) back in front.
if [ -n "${LOCAL_SLURM_NODE_BIN:-}" ]; then
  case ":$PATH:" in
    *":$LOCAL_SLURM_NODE_BIN:"*) ;;
    *) PATH="$LOCAL_SLURM_NODE_BIN:$PATH"; export PATH ;;
  esac
fi
EOF
/usr/sbin/sshd -t -f "$SSHD/sshd_config"
if alive "$RUN/sshd.pid"; then
  # Re-read sshd_config. Applies to new connections only: SkyPilot keeps SSH
  # ControlMaster connections open for minutes, and sessions multiplexed over
  # them keep the old environment until those `ssh: ... [mux]` processes exit.
  kill -HUP "$(cat "$RUN/sshd.pid")"
  sleep 0.5
else
  log "starting sshd on 127.0.0.1:$SSH_PORT"
  /usr/sbin/sshd -f "$SSHD/sshd_config" -E "$LOG/sshd.log"
  for _ in $(seq 50); do alive "$RUN/sshd.pid" && break; sleep 0.1; done
fi

# ------------------------------------- 6. offline helpers for SkyPilot's node runtime
# SkyPilot installs uv on the node with `curl -LsSf https://astral.sh/uv/install.sh | sh`
# and then `uv venv --python 3.10`; neither astral.sh nor Python downloads from
# GitHub are reachable here.  A `curl` wrapper first on the SSH sessions' PATH
# answers that one URL with a local installer that copies a uv binary taken from
# PyPI (the `uv` wheel), wrapped so that uv finds a Python 3.10 (pyenv's, if
# present).  Every other curl call goes to the real /usr/bin/curl.
NODEDIR=$BASE/node
if [ ! -x "$NODEDIR/uvpkg/bin/uv" ]; then
  log "fetching uv from PyPI"
  python3 -m pip install -q --target "$NODEDIR/uvpkg" uv
fi
mkdir -p "$NODEDIR/py"
PY310=""
for c in $HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
  [ -x "$c" ] && { PY310=$c; break; }
done
if [ -n "$PY310" ]; then ln -sfn "$PY310" "$NODEDIR/py/python3.10"; fi
cat > "$NODEDIR/uv-wrapper" <<EOF
#!/bin/sh
# uv as installed on the SkyPilot node by the offline installer ($TAG).
# Put a Python 3.10 first on PATH for interpreter discovery (SkyPilot asks for
# --python 3.10 and uv cannot download one offline). No 3.10 here? Then
# rewrite the request to the system python3.
export UV_PYTHON_DOWNLOADS=never
# PyPI is behind a TLS-inspecting proxy; uv needs the system CA bundle.
if [ -z "\${SSL_CERT_FILE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
fi
export PATH="$NODEDIR/py:\$PATH"
if [ ! -e "$NODEDIR/py/python3.10" ]; then
  for a in "\$@"; do shift; [ "\$a" = "3.10" ] && a=\$(command -v python3); set -- "\$@" "\$a"; done
fi
exec "$NODEDIR/uvpkg/bin/uv" "\$@"
EOF
chmod 755 "$NODEDIR/uv-wrapper"
cat > "$NODEDIR/uv-install.sh" <<EOF
#!/bin/sh
# Offline stand-in for https://astral.sh/uv/install.sh ($TAG).
set -e
d="\${UV_INSTALL_DIR:-\$HOME/.local/bin}"
mkdir -p "\$d"
cp "$NODEDIR/uv-wrapper" "\$d/uv"
ln -sf "$NODEDIR/uvpkg/bin/uvx" "\$d/uvx" 2>/dev/null || true
echo "installed uv (offline, $TAG) to \$d"
EOF
cat > "$NODEDIR/bin/curl" <<EOF
#!/bin/sh
# $TAG: serve the uv installer locally; everything else is the real curl.
for a in "\$@"; do
  case "\$a" in https://astral.sh/uv/install.sh) exec cat "$NODEDIR/uv-install.sh";; esac
done
exec /usr/bin/curl "\$@"
EOF
chmod 755 "$NODEDIR/bin/curl"
# Cloud images have passwordless sudo and task setups use it (`sudo apt-get ...`);
# this Debian has no sudo binary. The SSH user here is root already, so on the
# node PATH `sudo [opts] [VAR=val...] cmd` just runs cmd (env assignments kept).
# Set LOCAL_SLURM_NO_SUDO_SHIM=1 to leave it out and see how a task copes
# without sudo, as on most real Slurm clusters.
if [ "${LOCAL_SLURM_NO_SUDO_SHIM:-0}" = 1 ]; then
  rm -f "$NODEDIR/bin/sudo"
else
  cat > "$NODEDIR/bin/sudo" <<EOF
#!/bin/sh
# $TAG: stand-in sudo for a node whose SSH user is root.
[ "\$(id -u)" = 0 ] || { echo "sudo: not available on this node (not root)" >&2; exit 1; }
while [ \$# -gt 0 ]; do
  case "\$1" in
    -u|-g|-C|-D|-p|-r|-t|-U) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
# All "nodes" here share one root filesystem: two clusters running
# \`sudo apt-get ...\` in their setup at once would fail on the dpkg lock
# ("Could not get lock /var/lib/dpkg/lock-frontend"), which separate VMs never
# see. Serialize apt/dpkg run through sudo.
for a in "\$@"; do
  case "\$a" in *=*) continue ;; apt|apt-get|dpkg|*/apt|*/apt-get|*/dpkg)
    exec flock -w 900 "$NODEDIR/apt.lock" env "\$@" ;; *) break ;; esac
done
exec env "\$@"
EOF
  chmod 755 "$NODEDIR/bin/sudo"
fi

# ------------------------------------------------------- 7. ~/.slurm/config
mkdir -p ~/.slurm
if [ ! -f ~/.slurm/config ] || grep -q "$TAG" ~/.slurm/config; then
  cat > ~/.slurm/config <<EOF
# $TAG: SkyPilot reaches the Slurm login node with these SSH settings.
# The Host name is the Slurm cluster's name in SkyPilot: --infra slurm/$SKY_SLURM_NAME
Host $SKY_SLURM_NAME
    HostName 127.0.0.1
    Port $SSH_PORT
    User root
    IdentityFile $SSHD/id_ed25519
    IdentitiesOnly yes
EOF
else
  log "~/.slurm/config exists and was not written by this script; left alone"
fi

# ------------------------------------- 8. SkyPilot client/API-server side (optional)
# LOCAL_SLURM_SKY_VENV: the venv that runs SkyPilot (default: the project's .venv, created if absent).
SKY_VENV=${LOCAL_SLURM_SKY_VENV:-$PROJECT/.venv}
[ -x "$SKY_VENV/bin/python" ] || { log "creating $SKY_VENV"; python3 -m venv "$SKY_VENV"; }
# The Slurm extra (python-hostlist) on top of the project's own SkyPilot pin (pyproject's `slurm` extra).
if ! "$SKY_VENV/bin/python" -c 'import hostlist, sky' 2>/dev/null; then
  log "pip install -e '$PROJECT[test,slurm]' into $SKY_VENV"
  "$SKY_VENV/bin/pip" install -q -e "$PROJECT[test,slurm]"
fi
if [ -x "$SKY_VENV/bin/python" ]; then
  # Managed jobs/pools: the default jobs controller is a 4+ CPU cluster with
  # autostop -- not possible on a 2-CPU Slurm node without containers. Run the
  # controller inside the API server instead (takes effect on `sky api start`).
  mkdir -p ~/.sky
  if [ ! -f ~/.sky/config.yaml ]; then
    cat > ~/.sky/config.yaml <<EOF
# $TAG: run the managed-jobs/pool controller inside the local API server.
jobs:
  controller:
    consolidation_mode: true
EOF
  elif ! grep -q consolidation_mode ~/.sky/config.yaml; then
    log "NOTE: ~/.sky/config.yaml exists without jobs.controller.consolidation_mode: true; managed jobs will try to launch a 4-CPU controller"
  fi
  # Offline patch loaded by every python of that venv (see src/local_slurm_offline.py):
  # the network check of the jobs controller goes to the local API server, not
  # https://8.8.8.8 / https://1.1.1.1; usage telemetry off.
  # Also: controller liveness that survives a VM clock step (see the module).
  SP=$("$SKY_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cp "$HERE/src/local_slurm_offline.py" "$SP/local_slurm_offline.py"
  echo "import local_slurm_offline" > "$SP/local_slurm_offline.pth"
  log "SkyPilot venv $SKY_VENV patched (a running API server picks this up on restart)"
fi

# ---------------------------------------------------------------- 9. checks
SSH="ssh -p $SSH_PORT -i $SSHD/id_ed25519 -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@127.0.0.1"
$SSH sinfo
# --immediate: on a re-run while SkyPilot clusters hold both CPUs, do not hang.
timeout 90 $SSH srun -N1 -n1 --mem=64 --immediate=30 hostname || log "srun check skipped (node busy?)"
# The command shape SkyPilot uses (login shell): curl must be the wrapper
# (srun passes this PATH on to the job steps).
$SSH "bash --login -c 'command -v curl'" | grep -qx "$BASE/node/bin/curl" \
  || { echo "curl wrapper is not first on PATH in SkyPilot-style sessions" >&2; exit 1; }
log "listening sockets of the daemons started here:"
ss -ltnpH | grep -E "slurm|sshd" || true
log "ready: PIDs $(cat "$RUN"/*.pid | tr '\n' ' ')"

# ------------------------------------------ 10. the local SkyPilot API server (offline)
# Started from the patched venv so the managed-jobs controllers it runs (consolidation mode) use the
# offline network check. One already answering is left alone (and not stopped by `down`).
SKY="$SKY_VENV/bin/sky"
if curl -s -o /dev/null --max-time 3 http://127.0.0.1:46580/api/health; then
  [ -f "$RUN/sky-api.ours" ] || log "a SkyPilot API server already answers on 127.0.0.1:46580; using it (down leaves it running)"
else
  log "sky api start"
  "$SKY" api start >"$LOG/sky-api-start.log" 2>&1 || { cat "$LOG/sky-api-start.log" >&2; exit 1; }
  touch "$RUN/sky-api.ours"
fi
"$SKY" check slurm >"$LOG/sky-check.log" 2>&1 || true
grep -qi "slurm.*enabled\|enabled.*slurm" "$LOG/sky-check.log" || "$SKY" check slurm 2>&1 | tail -5
log "sky check slurm: $(grep -io 'slurm.*' "$LOG/sky-check.log" | head -1)"
log "SkyPilot up: infra slurm/$SKY_SLURM_NAME via $SKY_VENV"
