"""A thin facade over the SkyPilot SDK calls the backend makes — and the one seam tests replace.

Every method is blocking (the SDK's request ids are waited on with `sky.get`) and returns plain
values, so the backend's logic reads the same against the real SDK and against the stand-in in
tests/sky_standin.py. `RESEARCH_AGENT_SKY_API=module:factory` swaps the facade (the tests use it for
subprocess runs); nothing else in the package imports `sky`.

Secrets: task files on disk never hold a value. `_task` loads the written YAML and adds the values
from the environment in memory (`Task.update_secrets`), which SkyPilot passes to the VM as secrets.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import threading
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..text import error_line
from .base import WorkersUnavailable

# What we read of a managed job. sky.jobs.client.sdk.queue_v2's default fields
# (sky.jobs.constants.DEFAULT_MANAGED_JOB_FIELDS) leave out failure_reason: name it.
JOB_FIELDS = ("job_id", "job_name", "status", "recovery_count", "job_duration", "failure_reason")


class CloudError(WorkersUnavailable):
    """No usable cloud: no infra enabled, or the requested resources exist nowhere (exit 8)."""


class LaunchError(Exception):
    """A launch that did not give a worker. `unavailable`: SkyPilot's optimizer found no offering that
    satisfies the request anywhere (retrying cannot help); otherwise a capacity or transient failure."""

    def __init__(self, reason: str, unavailable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unavailable = unavailable


def _launch_error(error: BaseException) -> LaunchError:
    """SkyPilot's failure as a LaunchError: an empty failover history means no offering exists at all."""
    from sky import exceptions

    if isinstance(error, exceptions.NoCloudAccessError):
        return LaunchError(f"no infra enabled: run `sky check` ({error_line(error, 400)})", unavailable=True)
    if isinstance(error, exceptions.ResourcesUnavailableError):
        return LaunchError(error_line(error, 400), unavailable=not getattr(error, "failover_history", None))
    if isinstance(error, exceptions.RequestCancelled):
        return LaunchError("launch cancelled")
    return LaunchError(error_line(error, 400))


class WorkerLost(Exception):
    """The cluster is gone or unreachable (spot preemption, autostop, someone ran `sky down`)."""


class SkyNotInstalled(UserError):
    def __init__(self):
        super().__init__("the skypilot backend needs SkyPilot: pip install 'research-agent[cloud]' (plus your cloud's extra, e.g. 'skypilot[aws]')")


def load_api():
    """The SDK facade: SkyAPI, or the factory named by RESEARCH_AGENT_SKY_API (tests)."""
    spec = os.environ.get("RESEARCH_AGENT_SKY_API")
    if spec:
        module, _, attr = spec.partition(":")
        return getattr(importlib.import_module(module), attr or "make_api")()
    if not installed():
        raise SkyNotInstalled()
    return SkyAPI()


def installed() -> bool:
    """SkyPilot importable (without importing it). A project's `sky/` folder of templates would look
    like a namespace package to `import sky`: only a real package (with an origin) counts."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("sky")
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


def _field(record, name: str, default=None):
    if isinstance(record, dict):
        return record.get(name, default)
    return getattr(record, name, default)


def _value(state) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


class SkyAPI:
    """The real SkyPilot SDK (client side; the API server does the work)."""

    def __init__(self):
        import sky  # noqa: F401  (fail early with ImportError when the extra is missing)

        self._requests: dict[str, object] = {}
        self._lock = threading.Lock()

    def _task(self, yaml_path: Path, secrets: dict[str, str] | None = None):
        import sky

        task = sky.Task.from_yaml(str(yaml_path))
        if secrets:
            task.update_secrets(dict(secrets))
        return task

    # --- clusters ---------------------------------------------------------------------------

    def launch(self, yaml_path: Path, cluster: str, idle_minutes: int | None, secrets: dict[str, str],
               on_request: Callable[[str], None] | None = None) -> None:
        """sky.client.sdk.launch with autostop+autodown in the request itself (so a cluster whose setup
        fails still has it). `on_request(request_id)` fires the moment the server gave an id: the
        caller records it, so a later `down` (even from another process) cancels it by id."""
        import sky

        with _quiet():  # sky.launch prints the optimizer table and "Running on cluster" to stdout
            request = sky.launch(self._task(yaml_path, secrets), cluster_name=cluster, idle_minutes_to_autostop=idle_minutes,
                                 down=True, retry_until_up=False, _need_confirmation=False)
        with self._lock:
            self._requests[cluster] = request
        _told(on_request, request)
        try:
            with _quiet():
                sky.get(request)
        except Exception as error:  # noqa: BLE001 — any SkyPilot failure is a failed launch, with its reason
            raise _launch_error(error) from None
        finally:
            with self._lock:
                self._requests.pop(cluster, None)

    def cancel_launch(self, cluster: str) -> None:
        """The launch this process has in flight for `cluster`, cancelled by its request id (none: no-op)."""
        with self._lock:
            request = self._requests.get(cluster)
        if request is not None:
            with contextlib.suppress(Exception):
                self.cancel_request(str(request))

    def cancel_request(self, request_id: str) -> None:
        """sky.client.sdk.api_cancel: abort an in-flight request (launch, jobs.launch, pool_apply) by id.
        A request already finished is left as it is (api_cancel only aborts PENDING/RUNNING ones)."""
        import sky

        sky.get(sky.api_cancel(request_id, silent=True))

    def exec(self, yaml_path: Path, cluster: str, secrets: dict[str, str]) -> int:
        import sky

        try:
            with _quiet():
                job_id, _handle = sky.get(sky.exec(self._task(yaml_path, secrets), cluster_name=cluster))
        except Exception as error:  # noqa: BLE001
            raise exec_error(error) from None
        return int(job_id)

    def job_status(self, cluster: str, job_id: int) -> str | None:
        import sky
        from sky import exceptions

        try:
            statuses = sky.get(sky.job_status(cluster, [job_id]))
        except (exceptions.ClusterNotUpError, exceptions.ClusterDoesNotExist) as error:
            raise WorkerLost(error_line(error, 400)) from None
        return _value(statuses.get(job_id, statuses.get(str(job_id))))

    def cluster_status(self, names: list[str]) -> dict[str, str]:
        import sky
        from sky.utils import common

        records = sky.get(sky.status(names, refresh=common.StatusRefreshMode.AUTO))
        return {_field(r, "name"): _value(_field(r, "status")) for r in records}

    def logs(self, cluster: str, job_id: int) -> str:
        import sky

        buffer = io.StringIO()
        sky.tail_logs(cluster, job_id, follow=False, output_stream=buffer)
        return buffer.getvalue()

    def cancel(self, cluster: str, job_ids: list[int] | None) -> None:
        """sky.client.sdk.cancel: `job_ids=None` here means every job on the cluster (the SDK's
        `all=True`); an empty list cancels nothing, as in the SDK (skylet job_lib.cancel_jobs)."""
        import sky

        if job_ids is None:
            sky.get(sky.cancel(cluster, all=True))
        elif job_ids:
            sky.get(sky.cancel(cluster, job_ids=list(job_ids)))

    def down(self, cluster: str) -> None:
        import sky
        from sky import exceptions

        try:
            with _quiet():
                sky.get(sky.down(cluster))
        except exceptions.ClusterDoesNotExist:
            pass

    def autostop(self, cluster: str, idle_minutes: int) -> None:
        import sky

        sky.get(sky.autostop(cluster, idle_minutes, down=True))

    def cluster_price(self, cluster: str) -> float | None:
        """USD per hour of the launched cluster, from SkyPilot's catalog (None if unknown)."""
        import sky

        with contextlib.suppress(Exception), _quiet():
            for record in sky.get(sky.status([cluster])):
                handle = _field(record, "handle")
                resources = getattr(handle, "launched_resources", None)
                nodes = getattr(handle, "launched_nodes", 1) or 1
                if resources is not None:
                    return float(resources.get_cost(3600)) * nodes
        return None

    # --- managed jobs and pools -------------------------------------------------------------

    def jobs_launch(self, yaml_path: Path, name: str, pool: str | None, secrets: dict[str, str],
                    on_request: Callable[[str], None] | None = None) -> int:
        import sky

        try:
            with _quiet():
                request = sky.jobs.launch(self._task(yaml_path, secrets), name=name, pool=pool, _need_confirmation=False)
                _told(on_request, request)
                job_ids, _handle = sky.get(request)
        except Exception as error:  # noqa: BLE001
            raise _launch_error(error) from None
        return int(job_ids[0])

    def jobs_status(self, job_ids: list[int], fields: tuple[str, ...] = JOB_FIELDS) -> dict[int, dict]:
        """sky.jobs.client.sdk.queue_v2 (queue v1 is deprecated and warns on every call) with the
        fields we read; it returns (records, total, status counts, ...)."""
        import sky

        with _quiet():
            result = sky.get(sky.jobs.queue_v2(refresh=False, skip_finished=False, job_ids=list(job_ids), fields=list(fields)))
        records = result[0] if isinstance(result, tuple) else result
        out = {}
        for record in records:
            out[int(_field(record, "job_id"))] = {
                "status": _value(_field(record, "status")),
                "recovery_count": _field(record, "recovery_count") or 0,
                "duration": _field(record, "job_duration"),
                "reason": _field(record, "failure_reason"),
            }
        return out

    def jobs_logs(self, job_id: int) -> str:
        import sky

        buffer = io.StringIO()
        sky.jobs.tail_logs(job_id=job_id, follow=False, output_stream=buffer)
        return buffer.getvalue()

    def jobs_cancel(self, job_ids: list[int]) -> None:
        """sky.jobs.client.sdk.cancel: asynchronous — the jobs go CANCELLING and reach CANCELLED later
        (the controller does it); wait on jobs_status for that. An empty list cancels nothing."""
        import sky

        if job_ids:
            with _quiet():
                sky.get(sky.jobs.cancel(job_ids=list(job_ids)))

    def pool_apply(self, yaml_path: Path, pool: str, workers: int, secrets: dict[str, str],
                   on_request: Callable[[str], None] | None = None) -> None:
        import sky
        from sky.serve import serve_utils

        try:
            with _quiet():
                request = sky.jobs.pool_apply(self._task(yaml_path, secrets), pool, mode=serve_utils.UpdateMode.ROLLING, workers=workers)
                _told(on_request, request)
                sky.get(request)
        except Exception as error:  # noqa: BLE001
            raise _launch_error(error) from None

    def pool_status(self, pool: str) -> dict | None:
        import sky

        from sky import exceptions

        try:
            with _quiet():
                records = sky.get(sky.jobs.pool_status([pool]))
        except exceptions.ClusterNotUpError:  # no jobs controller up ("No in-progress managed jobs"): no pool either
            return None
        for record in records:
            if _field(record, "name") == pool:
                return {"status": _value(_field(record, "status"))}
        return None

    def pool_down(self, pool: str) -> None:
        import sky

        from sky import exceptions

        try:
            with _quiet():
                sky.get(sky.jobs.pool_down(pool))
        except exceptions.ClusterNotUpError:  # a failed pool start left no controller: nothing to take down
            pass
        except Exception as error:  # noqa: BLE001
            if "not found" not in str(error).lower() and "does not exist" not in str(error).lower():
                raise

    # --- discovery, prices, infra -----------------------------------------------------------

    def list_clusters(self, prefix: str) -> list[str]:
        import sky

        return [_field(r, "name") for r in sky.get(sky.status()) if str(_field(r, "name")).startswith(prefix)]

    def list_jobs(self, prefix: str) -> list[tuple[int, str]]:
        import sky

        with _quiet():
            result = sky.get(sky.jobs.queue_v2(refresh=False, skip_finished=True, fields=["job_id", "job_name", "status"]))
        records = result[0] if isinstance(result, tuple) else result
        return [(int(_field(r, "job_id")), _field(r, "job_name")) for r in records if str(_field(r, "job_name") or "").startswith(prefix)]

    def list_pools(self, prefix: str) -> list[str]:
        import sky

        return [_field(r, "name") for r in sky.get(sky.jobs.pool_status(None)) if str(_field(r, "name")).startswith(prefix)]

    def hourly_price(self, resources: dict) -> float | None:
        """The catalog's cheapest matching USD/h (per node) for these resources, or None if unknown."""
        import sky
        from sky import catalog

        with contextlib.suppress(Exception), _quiet():
            res = one_resources(resources)
            clouds = [str(res.cloud).lower()] if res.cloud is not None else [c.lower() for c in (self.enabled_infra() or [])]
            prices = []
            for cloud in clouds:
                with contextlib.suppress(Exception):
                    if res.accelerators:
                        (name, count), = res.accelerators.items()
                        types, _ = catalog.get_instance_type_for_accelerator(name, count, use_spot=res.use_spot, region=res.region, zone=res.zone, clouds=cloud)
                        instance = (types or [None])[0]
                    else:
                        instance = res.instance_type or catalog.get_default_instance_type(
                            cpus=res.cpus, memory=res.memory, use_spot=res.use_spot, region=res.region, zone=res.zone, clouds=cloud)
                    if instance:
                        prices.append(catalog.get_hourly_cost(instance, res.use_spot, res.region, res.zone, clouds=cloud))
            return min(prices) if prices else None
        return None

    def enabled_infra(self) -> list[str] | None:
        """Infra `sky check` enabled: from a running API server, else its last cached answer; None if unknown."""
        with contextlib.suppress(Exception), _quiet():
            from sky.server import common

            if str(common.get_api_server_status().status.value).lower() == "healthy":
                import sky

                return [str(c) for c in sky.get(sky.client.sdk.enabled_clouds())]
        return cached_enabled_infra()


def one_resources(config: dict):
    """sky.resources.Resources.from_yaml_config returns a *set* (or a list for `ordered:`) of
    Resources, never one: the first of them (ours never use any_of / ordered)."""
    import sky

    parsed = sky.Resources.from_yaml_config(dict(config))
    if isinstance(parsed, (set, list, tuple)):
        return next(iter(parsed))
    return parsed


def exec_error(error: BaseException) -> Exception:
    """A failed sky.client.sdk.exec as WorkerLost (the job never ran: requeue it on another worker,
    remove this one) — a cluster gone or down, a failed file sync (sky.exceptions.CommandError from
    rsync), a cluster that cannot take the task (ResourcesMismatchError), the API server
    unreachable (ApiServerConnectionError, a dropped connection) — or the error itself otherwise."""
    from sky import exceptions

    lost = (exceptions.ClusterNotUpError, exceptions.ClusterDoesNotExist, exceptions.CommandError,
            exceptions.ResourcesMismatchError, exceptions.ApiServerConnectionError, exceptions.FetchClusterInfoError,
            exceptions.ClusterSetUpError, ConnectionError, TimeoutError)
    try:
        import requests

        lost += (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    except ImportError:  # pragma: no cover - SkyPilot depends on requests
        pass
    if isinstance(error, lost):
        return WorkerLost(f"{type(error).__name__}: {error_line(error, 400)}")
    return error


def _told(on_request, request) -> None:
    if on_request is not None:
        with contextlib.suppress(Exception):
            on_request(str(request))


def cached_enabled_infra() -> list[str] | None:
    """What the last `sky check` on this machine enabled, read from SkyPilot's local state (no server)."""
    import json
    import sqlite3

    db = Path("~/.sky/state.db").expanduser()
    if not db.is_file():
        return None
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = connection.execute("SELECT key, value FROM config WHERE key LIKE '%enabled_clouds_%'").fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    found: list[str] = []
    for _key, value in rows:
        try:
            found += [c for c in json.loads(value) if c not in found]
        except (TypeError, ValueError):
            continue
    return found


@contextlib.contextmanager
def _quiet():
    """SkyPilot prints progress (catalog downloads, spinners) to stdout: keep it off ours."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield
