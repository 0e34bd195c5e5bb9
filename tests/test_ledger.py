"""The ledger owns its rows: typed workers, one run-status vocabulary, named queries; old ledgers still read."""

import json
import sqlite3
from pathlib import Path

import pytest

from research_agent.errors import RunDirError
from research_agent.ledger import MIGRATIONS, SCHEMA_VERSION, Ledger, RunStatus, Worker, WorkerStatus, read_view

PACKAGE = Path(__file__).resolve().parent.parent / "research_agent"


def test_run_statuses_are_the_stored_strings(tmp_path):
    # The values are what ledgers on disk hold: renaming one would strand existing run dirs.
    assert {s.value for s in RunStatus} == {"running", "planned", "done", "budget", "interrupted", "failed", "dryrun"}
    ledger = Ledger(tmp_path / "ledger.sqlite")
    assert ledger.run_status() is None
    ledger.create_run("r", "t", "fp")
    assert ledger.run_status() is RunStatus.RUNNING
    for status in RunStatus:
        ledger.update_run(status=status)
        assert ledger.run_status() is status
        assert ledger.run()["status"] == status.value and type(ledger.run()["status"]) is str
    ledger.update_run(status="budget")  # a plain string of a known state is fine
    assert ledger.run_status() is RunStatus.BUDGET
    with pytest.raises(ValueError):
        ledger.update_run(status="finished")  # not a state any reader knows
    assert ledger.run_status() is RunStatus.BUDGET
    ledger.close()


def test_workers_are_typed_rows_with_decoded_meta(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.add_worker("ra-x-1", "skypilot", None, None, meta={"kind": "cluster", "slot": 1})
    ledger.add_worker("local-1", "local", str(tmp_path / "wt"), "r1-H1")
    ledger.update_worker_meta("ra-x-1", request_id="req-9")
    ledger.update_worker_meta("ra-x-1", slot=2)
    ledger.set_worker_status("ra-x-1", WorkerStatus.UP)

    cluster = ledger.worker("ra-x-1")
    assert isinstance(cluster, Worker)
    assert cluster.kind == "cluster" and cluster.meta == {"kind": "cluster", "slot": 2, "request_id": "req-9"}
    assert cluster.status is WorkerStatus.UP and cluster.ended is None and cluster.path is None
    local = ledger.worker("local-1")
    assert local.kind is None and local.meta == {} and local.experiment_id == "r1-H1" and local.status is WorkerStatus.REQUESTED
    assert ledger.worker("nobody") is None

    ledger.set_worker_status("local-1", "down")
    assert ledger.worker("local-1").ended is not None
    assert [w.id for w in ledger.workers()] == ["ra-x-1", "local-1"]
    assert [w.id for w in ledger.workers(live_only=True)] == ["ra-x-1"]
    assert [w.id for w in ledger.workers(live_only=True, backend="local")] == []
    assert [w.id for w in ledger.workers(backend="local")] == ["local-1"]
    with pytest.raises(ValueError):
        ledger.set_worker_status("local-1", "gone")
    ledger.close()

    # What is stored is still the JSON text and the status words the schema always had.
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    rows = dict(db.execute("SELECT id, status FROM workers").fetchall())
    meta = json.loads(db.execute("SELECT meta FROM workers WHERE id='ra-x-1'").fetchone()[0])
    db.close()
    assert rows == {"ra-x-1": "up", "local-1": "down"} and meta["request_id"] == "req-9"


def test_named_cost_queries(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.add_cost("compute", 1.5, "r1-H1", detail="ra-run-1")
    ledger.add_cost("compute", 0.25, None, detail="ra-run-1")
    ledger.add_cost("compute", 2.0, "r1-H2", detail="ra-run-2-g2")
    ledger.add_cost("llm", 9.0, "r1-H2", detail="ra-run-2-judge")  # not compute: not in the prefix sum
    ledger.add_cost("compute", 4.0, None, detail="ra-other-1")
    assert ledger.cost_with_detail("ra-run-1") == 1.75
    assert ledger.cost_with_detail("ra-nothing") == 0.0
    assert ledger.compute_cost_with_detail_prefix("ra-run-") == 3.75
    ledger.close()


def _old_ledger(path: Path, version: int) -> None:
    """A ledger as earlier releases wrote it: their schema scripts and their literal INSERTs."""
    db = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:version]):
        db.executescript("BEGIN;" + script + f"PRAGMA user_version={number + 1}; COMMIT;")
    db.execute("INSERT INTO runs (id, task_name, task_fingerprint, created, status) VALUES ('old','demo','fp',1.0,'interrupted')")
    db.execute("INSERT INTO workers (id, backend, status, path, experiment_id, created, meta) VALUES"
               " ('ra-old-1','skypilot','up',NULL,NULL,2.0,?)", (json.dumps({"kind": "cluster", "slot": 1, "mode": "clusters"}),))
    db.execute("INSERT INTO workers (id, backend, status, path, experiment_id, created, meta) VALUES"
               " ('ra-old-job','skypilot','requested',NULL,'r1-H1',3.0,'{}')")
    db.execute("INSERT INTO workers (id, backend, status, path, experiment_id, created, ended, meta) VALUES"
               " ('local-1','local','down','/nowhere','r1-H1',4.0,5.0,NULL)")  # meta NULL: the oldest rows
    db.execute("INSERT INTO costs (experiment_id, kind, usd, detail, created) VALUES (NULL,'compute',0.5,'ra-old-1',6.0)")
    db.commit()
    db.close()


@pytest.mark.parametrize("version", [1, SCHEMA_VERSION])
def test_a_ledger_written_by_earlier_releases_reads_and_resumes(tmp_path, version):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _old_ledger(run_dir / "ledger.sqlite", version)

    view = read_view(run_dir)  # read-only: what `status` and `report` see, before any migration
    assert view.run["status"] == RunStatus.INTERRUPTED and view.total_cost == 0.5 and view.noise == []

    ledger = Ledger.open_existing(run_dir / "ledger.sqlite")  # what `resume` does: migrate, then go on
    assert ledger.run_status() is RunStatus.INTERRUPTED
    workers = {w.id: w for w in ledger.workers()}
    assert workers["ra-old-1"].kind == "cluster" and workers["ra-old-1"].meta["slot"] == 1
    assert workers["ra-old-job"].status is WorkerStatus.REQUESTED and workers["ra-old-job"].meta == {}
    assert workers["local-1"].meta == {} and workers["local-1"].ended == 5.0
    assert [w.id for w in ledger.workers(live_only=True, backend="skypilot")] == ["ra-old-1", "ra-old-job"]
    assert ledger.cost_with_detail("ra-old-1") == 0.5
    ledger.update_worker_meta("ra-old-job", job_id=7)
    assert ledger.worker("ra-old-job").meta == {"job_id": 7}
    ledger.update_run(status=RunStatus.RUNNING)
    assert ledger.run_status() is RunStatus.RUNNING
    ledger.close()


def test_read_view_of_an_empty_ledger_is_one_clear_error(tmp_path):
    Ledger(tmp_path / "ledger.sqlite").close()
    with pytest.raises(RunDirError, match="the ledger has no run"):
        read_view(tmp_path)


def test_no_module_but_the_ledger_reaches_into_it():
    # The ledger's SQL and connection are its own; sky_api reads SkyPilot's own state database, not ours.
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "ledger.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "ledger._" in text or ("import sqlite3" in text and path.name != "sky_api.py"):
            offenders.append(path.relative_to(PACKAGE).as_posix())
    assert offenders == []
