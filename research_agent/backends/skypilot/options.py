"""The skypilot backend's `workers:` options, their validation, and the names every mode uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...errors import TaskError

NAME = "skypilot"

PREFIX = "ra-"

NO_SPOT_INFRA = ("k8s", "kubernetes", "slurm", "ssh")  # no spot market there

RESOURCE_KEYS = ("cpus", "memory", "accelerators", "infra", "cloud", "region", "zone", "use_spot", "disk_size",
                 "disk_tier", "image_id", "instance_type")

TERMINAL_JOB_STATES = {"SUCCEEDED", "FAILED", "FAILED_SETUP", "FAILED_DRIVER", "FAILED_PRECHECKS", "FAILED_NO_RESOURCE",
                       "FAILED_CONTROLLER", "CANCELLED"}  # sky.jobs.state.ManagedJobStatus.terminal_statuses()

REMOVAL_SECONDS = 600.0  # how long `down` waits for SkyPilot to confirm a worker gone

RUNNING_STATES = {"PENDING", "SETTING_UP", "RUNNING", "INIT", "STARTING", "SUBMITTED", "RECOVERING", "WINDING_DOWN", "CANCELLING"}



class SkyOptions(BaseModel):
    """`workers:` options of the skypilot backend (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["clusters", "jobs", "pool"] = "clusters"
    count: int | None = Field(None, ge=1)  # workers; default: experiments.parallel
    resources: dict[str, Any] = Field(default_factory=dict)  # any SkyPilot `resources:` keys
    cpus: int | float | str | None = None
    memory: int | float | str | None = None
    accelerators: str | dict | None = None
    infra: str | None = None
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    use_spot: bool | None = None  # default: spot, except on Kubernetes / Slurm / SSH pools
    disk_size: int | None = None
    disk_tier: str | None = None
    image_id: str | None = None
    instance_type: str | None = None
    idle_minutes: int = Field(30, ge=1)  # clusters mode: autodown after this long idle
    price_per_hour: float | None = Field(None, ge=0)  # USD per worker-hour; default: SkyPilot's catalog
    est_minutes: float = Field(10.0, gt=0)  # one experiment's length until one has been measured
    setup: str = ""  # the project's build dependencies (shell, runs once per VM)
    files: list[str] = Field(default_factory=list)  # files beside the task file shipped to ~/.ra/task ($RA_TASK_DIR)
    envs: dict[str, Any] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)  # env var names passed as SkyPilot secrets
    max_attempts: int = Field(3, ge=1)  # per experiment: preemptions, lost transfers, crashed workers
    launch_attempts: int = Field(3, ge=1)
    fetch_attempts: int = Field(4, ge=1)
    poll_seconds: float = Field(5.0, gt=0)
    launch_timeout: float = Field(3600.0, gt=0)  # seconds a worker may take to come up

    def resources_dict(self, enabled: list[str] | None = None) -> dict:
        """The `resources:` block. cloud/region/zone become one `infra: cloud/region/zone` (SkyPilot
        deprecated the three keys for infra, sky.resources.Resources). Spot by default only where a
        spot market exists: not with Kubernetes / Slurm / SSH named, nor when they are all `enabled`."""
        merged = dict(self.resources)
        for key in RESOURCE_KEYS:
            value = getattr(self, key)
            if value is not None:
                merged[key] = value
        parts = [merged.pop(k, None) for k in ("cloud", "region", "zone")]
        if any(parts) and not merged.get("infra"):
            merged["infra"] = "/".join(str(p or "*") for p in parts).rstrip("/*") or None
        if not merged.get("infra"):
            merged.pop("infra", None)
        if "use_spot" not in merged:
            where = str(merged.get("infra") or "").lower()
            if where:
                merged["use_spot"] = not where.startswith(NO_SPOT_INFRA)
            else:
                merged["use_spot"] = enabled is None or any(not str(i).lower().startswith(NO_SPOT_INFRA) for i in enabled)
        return merged


def parse_options(raw: dict) -> SkyOptions:
    data = {k: v for k, v in raw.items() if k not in ("api", "dryrun", "budget_usd")}
    try:
        return SkyOptions.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TaskError(f"workers.{where}: {first['msg']}") from None


def prepare_task(task):
    """The task as a run of this backend needs it, checked before the run directory is made: a bad
    option is one line now, not after the baseline; workers.files resolved."""
    parse_options(task.workers.options)
    return with_resolved_files(task)


def with_resolved_files(task):
    """The task with workers.files made absolute (relative to the task file) and checked to exist."""
    files = task.workers.options.get("files") or []
    if isinstance(files, str):
        files = [files]
    resolved = []
    for name in files:
        path = Path(name).expanduser()
        path = path if path.is_absolute() else task.base_dir / path
        if not path.exists():
            raise TaskError(f"workers.files: {name} not found next to the task file")
        resolved.append(str(path.resolve()))
    if not files:
        return task
    workers = task.workers.model_copy(update={"options": {**task.workers.options, "files": resolved}})
    return task.model_copy(update={"workers": workers})


def slug(text: str, limit: int = 24) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"
    if len(cleaned) > limit:
        import hashlib

        cleaned = cleaned[: limit - 5].rstrip("-") + "-" + hashlib.sha1(text.encode()).hexdigest()[:4]
    return cleaned
