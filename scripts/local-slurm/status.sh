#!/bin/bash
# status.sh (run as `scripts/local-slurm.sh status`): the daemons `up` started, Slurm's view, the API server.
# Exit 0 when Slurm answers and the SkyPilot API server is healthy (the tier can run), else 1.
set -uo pipefail
BASE=${LOCAL_SLURM_BASE:-${TMPDIR:-/tmp}/local-slurm}
RUN=$BASE/run
ok=0
for name in munged slurmctld slurmd sshd; do
  pf=$RUN/$name.pid
  if [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; then echo "$name: running (pid $(cat "$pf"))"
  else echo "$name: not running"; ok=1; fi
done
if command -v sinfo >/dev/null && sinfo -h -N -o '%N %t' 2>/dev/null; then squeue 2>/dev/null; else echo "slurm: not answering"; ok=1; fi
if curl -s -o /dev/null --max-time 3 http://127.0.0.1:46580/api/health; then
  echo "sky api: healthy on 127.0.0.1:46580$([ -f "$RUN/sky-api.ours" ] && echo ' (started by up)')"
else echo "sky api: not running"; ok=1; fi
exit $ok
