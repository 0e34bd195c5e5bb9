#!/bin/bash
# A local single-node Slurm cluster plus a local SkyPilot API server, for the real-SkyPilot test tier
# (tests/test_skypilot_slurm.py) and for trying the skypilot backend with no cloud account.
#   scripts/local-slurm.sh up       install (apt, pip), configure and start; idempotent
#   scripts/local-slurm.sh down     stop exactly what `up` started (PID files); --purge also removes its files
#   scripts/local-slurm.sh status   what runs, and whether the tier would run (exit 0 when up)
# Root on Debian/Ubuntu; details and what it writes outside $LOCAL_SLURM_BASE: scripts/local-slurm/up.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
case "${1:-}" in
  up) exec bash "$HERE/local-slurm/up.sh" ;;
  down) shift; exec bash "$HERE/local-slurm/down.sh" "$@" ;;
  status) exec bash "$HERE/local-slurm/status.sh" ;;
  *) echo "usage: $0 up|down [--purge]|status" >&2; exit 2 ;;
esac
