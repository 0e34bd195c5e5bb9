"""Contract tests of research_agent/backends/sky_api.py against SkyPilot's real local API server.

Each call of the facade, for a name SkyPilot has never seen: what it returns or raises. This is what
the backend's logic (and tests/sky_standin.py) must assume, read from the real SDK rather than from
our expectations. No cluster is launched. Runs in the real-SkyPilot tier (`scripts/local-slurm.sh up`
starts the API server offline): a server started from the plain suite would share ~/.sky and port
46580 with the user's own SkyPilot.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

UNKNOWN = "ra-contract-never-launched"
UNKNOWN_JOB = 987654321


@pytest.fixture(scope="module")
def api():
    from research_agent.backends.sky_api import SkyAPI

    return SkyAPI()


@pytest.fixture
def tiny_task(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("name: contract\nresources: {infra: slurm, cpus: 1, use_spot: false}\nrun: echo hi\n")
    return path


# --- clusters ---------------------------------------------------------------------------------------


def test_cluster_status_of_unknown_cluster_is_empty(api):
    assert api.cluster_status([UNKNOWN]) == {}


def test_job_status_on_unknown_cluster_is_worker_lost(api):
    from research_agent.backends.sky_api import WorkerLost

    with pytest.raises(WorkerLost, match="does not exist"):
        api.job_status(UNKNOWN, 1)


def test_exec_on_unknown_cluster_is_worker_lost(api, tiny_task):
    from research_agent.backends.sky_api import WorkerLost

    with pytest.raises(WorkerLost, match="does not exist"):
        api.exec(tiny_task, UNKNOWN, {})


def test_logs_cancel_autostop_of_unknown_cluster_raise_cluster_does_not_exist(api):
    """Not mapped by the facade: SkyPilot's own ClusterDoesNotExist reaches the backend."""
    from sky import exceptions

    for call in (lambda: api.logs(UNKNOWN, 1), lambda: api.cancel(UNKNOWN, [1]), lambda: api.autostop(UNKNOWN, 5)):
        with pytest.raises(exceptions.ClusterDoesNotExist):
            call()


def test_down_of_unknown_cluster_returns(api):
    assert api.down(UNKNOWN) is None  # already gone is success


def test_cluster_price_of_unknown_cluster_is_none(api):
    assert api.cluster_price(UNKNOWN) is None


def test_cancel_launch_without_a_launch_returns(api):
    assert api.cancel_launch(UNKNOWN) is None


def test_launch_on_infra_not_enabled_is_unavailable(api, tmp_path):
    from research_agent.backends.sky_api import LaunchError

    task = tmp_path / "aws.yaml"
    task.write_text("name: contract\nresources: {infra: aws, cpus: 1}\nrun: echo hi\n")
    with pytest.raises(LaunchError) as error:
        api.launch(task, UNKNOWN, 5, {})
    assert error.value.unavailable, error.value.reason  # retrying cannot help: exit 8, not 3 attempts
    assert api.cluster_status([UNKNOWN]) == {}


# --- managed jobs and pools ----------------------------------------------------------------------------


def test_jobs_status_of_unknown_job_is_empty(api):
    assert api.jobs_status([UNKNOWN_JOB]) == {}


def test_jobs_logs_of_unknown_job_is_a_not_found_text_not_an_error(api):
    """SkyPilot answers with a line of text: a caller that looks for a result bundle finds none."""
    assert "not found" in api.jobs_logs(UNKNOWN_JOB).lower()


def test_jobs_cancel_of_unknown_job_returns(api):
    assert api.jobs_cancel([UNKNOWN_JOB]) is None


def test_jobs_launch_on_infra_not_enabled_is_accepted_then_fails_prechecks(api, tmp_path):
    """Unlike `launch`, `jobs.launch` does not raise for resources that exist nowhere: it returns a job id,
    and the job ends FAILED_PRECHECKS in the queue (issue 9 defect 8: the backend must map it to exit 8)."""
    import time

    task = tmp_path / "aws.yaml"
    task.write_text("name: contract\nresources: {infra: aws, cpus: 1}\nrun: echo hi\n")
    job_id = api.jobs_launch(task, UNKNOWN, None, {})
    deadline = time.monotonic() + 300
    while (status := (api.jobs_status([job_id]).get(job_id) or {}).get("status")) not in ("FAILED_PRECHECKS", "FAILED_NO_RESOURCE", "FAILED"):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status == "FAILED_PRECHECKS"
    assert api.list_jobs(UNKNOWN) == []  # finished: not listed as live


def test_pool_status_of_unknown_pool_is_none(api):
    assert api.pool_status(UNKNOWN) is None


def test_pool_down_of_unknown_pool_returns(api):
    assert api.pool_down(UNKNOWN) is None


# --- discovery, prices, infra ----------------------------------------------------------------------------


def test_listing_an_unused_prefix_is_empty(api):
    assert api.list_clusters(UNKNOWN) == []
    assert api.list_jobs(UNKNOWN) == []
    assert api.list_pools(UNKNOWN) == []


def test_enabled_infra_names_slurm(api):
    assert "slurm" in [name.lower() for name in api.enabled_infra() or []]


def test_hourly_price_on_slurm_is_unknown_or_free(api):
    """Slurm has no price catalog: no price (a budget then needs workers.price_per_hour), never an error."""
    assert api.hourly_price({"infra": "slurm", "cpus": 1, "use_spot": False}) in (None, 0.0)
