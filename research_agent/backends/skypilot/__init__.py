"""The SkyPilot backend: experiments on cloud VMs, Kubernetes or Slurm, on spot capacity, many at once.

Modules: options (the `workers:` block), backend (the Backend interface; `SkyPilotBackend(run, ...)`
gives the mode's class), clusters (`clusters` mode), managed (`jobs` and `pool`), execute (the shared
execute/fetch/deliver loop), inputs (what every VM needs), costs, teardown (`down`, re-attach,
doctor), registry. sky_api (one level up) stays the one seam over the SkyPilot SDK.
"""

from .backend import RemoteRuntime, SkyPilotBackend
from .execute import TransferError, _why
from .inputs import _packed
from .options import NAME, PREFIX, SkyOptions, parse_options, prepare_task, slug, with_resolved_files
from .registry import registered_runs, registry_path
from .teardown import TeardownIncomplete, _sweep, doctor_info, down_command

__all__ = ["NAME", "PREFIX", "RemoteRuntime", "SkyOptions", "SkyPilotBackend", "TeardownIncomplete", "TransferError",
           "doctor_info", "down_command", "parse_options", "prepare_task", "registered_runs", "registry_path", "slug", "with_resolved_files",
           "_packed", "_sweep", "_why"]
