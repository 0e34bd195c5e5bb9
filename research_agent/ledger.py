"""The run ledger: one SQLite file per run, the single source of truth for resume, status and report.

WAL mode, and every state change committed before the next step starts, so a `kill -9` at any
point loses nothing that finished. The schema is versioned with `PRAGMA user_version` and grows
by appending migrations (never by editing old ones).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from .errors import RunDirError

MIGRATIONS = [
    # 1: the core loop
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        task_name TEXT NOT NULL,
        task_fingerprint TEXT NOT NULL,
        created REAL NOT NULL,
        status TEXT NOT NULL,            -- a RunStatus (below)
        repo_dir TEXT,                   -- the run's own git repository
        base_commit TEXT,                -- the commit the run started from
        best_commit TEXT,                -- the current best (winners merged in)
        round INTEGER NOT NULL DEFAULT 1,
        baseline_median REAL,
        baseline_cv REAL
    );
    CREATE TABLE experiments (
        id TEXT PRIMARY KEY,             -- e.g. r1-H1
        hypothesis TEXT NOT NULL,
        title TEXT NOT NULL,
        round INTEGER NOT NULL,
        kind TEXT NOT NULL DEFAULT 'hypothesis',   -- hypothesis | combine
        status TEXT NOT NULL,            -- pending | running | done
        decision TEXT,                   -- kept | discarded | failed | rejected
        reason TEXT,
        base_commit TEXT,
        cand_commit TEXT,
        branch TEXT,
        effect_median REAL,
        ci_lo REAL,
        ci_hi REAL,
        n_pairs INTEGER,
        attempt INTEGER NOT NULL DEFAULT 0,
        worker TEXT,
        tokens INTEGER,
        turns INTEGER,
        started REAL,
        finished REAL,
        seq INTEGER NOT NULL             -- order of creation, for reports
    );
    CREATE TABLE samples (
        experiment_id TEXT NOT NULL,     -- an experiment id, or 'baseline'
        attempt INTEGER NOT NULL,
        arm TEXT NOT NULL,               -- baseline | base | cand
        idx INTEGER NOT NULL,
        value REAL NOT NULL,
        seconds REAL,
        created REAL NOT NULL,
        PRIMARY KEY (experiment_id, attempt, arm, idx)
    );
    CREATE TABLE decisions (
        experiment_id TEXT PRIMARY KEY,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL,
        effect TEXT,                     -- JSON: median, ci, n, confidence
        created REAL NOT NULL
    );
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        backend TEXT NOT NULL,
        status TEXT NOT NULL,            -- a WorkerStatus (below)
        path TEXT,
        experiment_id TEXT,
        created REAL NOT NULL,
        ended REAL,
        meta TEXT
    );
    CREATE TABLE costs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        experiment_id TEXT,
        kind TEXT NOT NULL,              -- compute | llm | agent
        usd REAL NOT NULL,
        detail TEXT,
        created REAL NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
    );
    """,
    # 2: run options that resume must keep (e.g. offline research)
    """
    ALTER TABLE runs ADD COLUMN options TEXT;
    """,
    # 3: every metric of every benchmark run, guard / holdout / build checks, worker noise
    """
    CREATE TABLE metrics (
        experiment_id TEXT NOT NULL,     -- an experiment id, or 'baseline'
        attempt INTEGER NOT NULL,
        bench TEXT NOT NULL,             -- bench | holdout-<n> | noise
        arm TEXT NOT NULL,               -- baseline | base | cand (noise: first | second)
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,              -- a METRIC name, or the built-in rss_mb / cpu_s
        value REAL,                      -- NULL: printed, but not a finite number
        created REAL NOT NULL,
        PRIMARY KEY (experiment_id, attempt, bench, arm, idx, name)
    );
    CREATE TABLE noise (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        worker TEXT NOT NULL,
        experiment_id TEXT,              -- the experiment it ran before
        pairs INTEGER NOT NULL,
        noise REAL,                      -- paired noise: RMS of log(second / first)
        bound REAL NOT NULL,             -- experiments.max_noise
        action TEXT NOT NULL,            -- ok | warned | replaced
        created REAL NOT NULL
    );
    ALTER TABLE experiments ADD COLUMN checks TEXT;  -- JSON: guards, holdout, identical build
    """,
    # 4: `ablate` — one ledger, two arms (research, control), each repeated over seeds; NULL arm: an optimize run
    """
    ALTER TABLE experiments ADD COLUMN arm TEXT;     -- research-<seed> | control-<seed>
    ALTER TABLE experiments ADD COLUMN origin TEXT;  -- research (grounded in sources) | explore (agent-proposed)
    CREATE TABLE arms (
        label TEXT PRIMARY KEY,          -- research-1, control-1, ...
        arm TEXT NOT NULL,               -- research | control
        seed INTEGER NOT NULL,
        planner TEXT,                    -- who wrote the arm's plan (extractive, a model, explore)
        best_commit TEXT,                -- the arm's winners stacked on the shared baseline
        status TEXT NOT NULL,            -- planned | done
        created REAL NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class RunStatus(StrEnum):
    """Every state of the `runs` row; a str enum, so the stored text is the value and old ledgers read as before."""

    RUNNING = "running"  # the loop runs (set again on every resume)
    PLANNED = "planned"  # stopped after writing the plan, for review; `resume` goes on once approved
    DONE = "done"  # every round finished
    BUDGET = "budget"  # launching stopped at the budget; what ran is decided
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM: workers removed, resumable
    FAILED = "failed"  # an error stopped it: workers removed, resumable
    DRYRUN = "dryrun"  # `--dry-run`: SkyPilot tasks written, nothing launched; `resume` launches them


class WorkerStatus(StrEnum):
    """Every state of a `workers` row."""

    REQUESTED = "requested"  # recorded before the worker is created, so cleanup can always find it
    UP = "up"
    DOWN = "down"  # removed (`ended` is set)


@dataclass(frozen=True)
class Worker:
    """One `workers` row; `meta` is its decoded JSON (the backend's own: kind, slot, job_id, request_id, ...)."""

    id: str
    backend: str
    status: WorkerStatus
    path: str | None
    experiment_id: str | None
    created: float
    ended: float | None
    meta: dict = field(default_factory=dict)

    @property
    def kind(self) -> str | None:
        """What the backend made: cluster | pool | job (SkyPilot); None for a local worktree."""
        return self.meta.get("kind")

    @classmethod
    def from_row(cls, row: sqlite3.Row | dict) -> "Worker":
        """The one place worker meta JSON is decoded (NULL and '' read as {})."""
        return cls(id=row["id"], backend=row["backend"], status=WorkerStatus(row["status"]), path=row["path"],
                   experiment_id=row["experiment_id"], created=row["created"], ended=row["ended"],
                   meta=json.loads(row["meta"] or "{}"))


class Ledger:
    """Thread-safe access to one run's ledger.sqlite."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable against process kills in WAL mode
        self._migrate()
        # The run's total cost, read every 0.2 s by the budget's hard stop: summed again only after a
        # cost row was written, by this connection (add_cost) or another one (data_version moved).
        self._spent: tuple[int, float] | None = None  # (data_version when summed, total)

    @classmethod
    def open_existing(cls, path: Path) -> "Ledger":
        if not Path(path).is_file():
            raise FileNotFoundError(path)
        return cls(path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"ledger schema {version} is newer than this tool ({SCHEMA_VERSION})")
            for number in range(version, SCHEMA_VERSION):
                self._db.executescript("BEGIN;" + MIGRATIONS[number] + f"PRAGMA user_version={number + 1}; COMMIT;")

    def _execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    def _rows(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, params).fetchall()]

    # --- runs -------------------------------------------------------------------------------

    def create_run(self, run_id: str, task_name: str, fingerprint: str) -> None:
        self._execute(
            "INSERT INTO runs (id, task_name, task_fingerprint, created, status) VALUES (?,?,?,?,?)",
            (run_id, task_name, fingerprint, time.time(), RunStatus.RUNNING),
        )

    def run(self) -> dict | None:
        rows = self._rows("SELECT * FROM runs LIMIT 1")
        return rows[0] if rows else None

    def run_status(self) -> RunStatus | None:
        """The run's state (None before `create_run`)."""
        run = self.run()
        return RunStatus(run["status"]) if run else None

    def options(self) -> dict:
        run = self.run() or {}
        return json.loads(run.get("options") or "{}")

    def update_run(self, **fields: Any) -> None:
        if "status" in fields:
            fields["status"] = RunStatus(fields["status"])  # only a known state is ever written
        sets = ", ".join(f"{key}=?" for key in fields)
        self._execute(f"UPDATE runs SET {sets}", tuple(fields.values()))

    # --- experiments ------------------------------------------------------------------------

    def add_experiment(self, exp_id: str, hypothesis: str, title: str, round_no: int, kind: str = "hypothesis",
                       arm: str | None = None, origin: str | None = None) -> bool:
        """Insert a pending experiment; returns False if it already exists (resume)."""
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM experiments").fetchone()[0]
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO experiments (id, hypothesis, title, round, kind, status, seq, arm, origin)"
                " VALUES (?,?,?,?,?, 'pending', ?, ?, ?)",
                (exp_id, hypothesis, title, round_no, kind, seq, arm, origin),
            )
            return cursor.rowcount == 1

    def start_experiment(self, exp_id: str, base_commit: str, branch: str, worker: str) -> int:
        """Mark running and bump the attempt number; returns the attempt."""
        with self._lock:
            self._db.execute(
                "UPDATE experiments SET status='running', attempt=attempt+1, base_commit=?, branch=?, worker=?,"
                " started=?, finished=NULL WHERE id=?",
                (base_commit, branch, worker, time.time(), exp_id),
            )
            return self._db.execute("SELECT attempt FROM experiments WHERE id=?", (exp_id,)).fetchone()[0]

    def update_experiment(self, exp_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{key}=?" for key in fields)
        self._execute(f"UPDATE experiments SET {sets} WHERE id=?", (*fields.values(), exp_id))

    def decide(self, exp_id: str, decision: str, reason: str, effect: dict | None = None, **fields: Any) -> None:
        """Record the final decision and close the experiment, in one transaction."""
        now = time.time()
        effect_cols = {}
        if effect is not None:
            effect_cols = {
                "effect_median": effect["median"],
                "ci_lo": effect["ci"][0],
                "ci_hi": effect["ci"][1],
                "n_pairs": effect["n"],
            }
        cols = {"status": "done", "decision": decision, "reason": reason, "finished": now, **effect_cols, **fields}
        sets = ", ".join(f"{key}=?" for key in cols)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"UPDATE experiments SET {sets} WHERE id=?", (*cols.values(), exp_id))
                self._db.execute(
                    "INSERT OR REPLACE INTO decisions (experiment_id, decision, reason, effect, created) VALUES (?,?,?,?,?)",
                    (exp_id, decision, reason, json.dumps(effect) if effect else None, now),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def experiment(self, exp_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM experiments WHERE id=?", (exp_id,))
        return rows[0] if rows else None

    def experiments(self, kind: str | None = None) -> list[dict]:
        if kind:
            return self._rows("SELECT * FROM experiments WHERE kind=? ORDER BY seq", (kind,))
        return self._rows("SELECT * FROM experiments ORDER BY seq")

    def reset_unfinished(self) -> list[str]:
        """After a crash: experiments left `running` go back to `pending` (their samples stay, by attempt)."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM experiments WHERE status='running'").fetchall()]
            self._db.execute("UPDATE experiments SET status='pending', worker=NULL WHERE status='running'")
            return ids

    # --- samples ----------------------------------------------------------------------------

    def add_sample(self, exp_id: str, attempt: int, arm: str, idx: int, value: float, seconds: float | None) -> None:
        self._execute(
            "INSERT OR REPLACE INTO samples (experiment_id, attempt, arm, idx, value, seconds, created) VALUES (?,?,?,?,?,?,?)",
            (exp_id, attempt, arm, idx, value, seconds, time.time()),
        )

    def samples(self, exp_id: str, arm: str, attempt: int | None = None) -> list[float]:
        if attempt is None:
            attempt = self._latest_attempt(exp_id)
        rows = self._rows(
            "SELECT value FROM samples WHERE experiment_id=? AND attempt=? AND arm=? ORDER BY idx",
            (exp_id, attempt, arm),
        )
        return [row["value"] for row in rows]

    def sample_seconds(self, exp_id: str, arm: str) -> list[float]:
        """Run times of one arm's samples (latest attempt)."""
        rows = self._rows("SELECT seconds FROM samples WHERE experiment_id=? AND attempt=? AND arm=? ORDER BY idx",
                          (exp_id, self._latest_attempt(exp_id), arm))
        return [row["seconds"] for row in rows]

    def sample_count(self, exp_id: str) -> int:
        attempt = self._latest_attempt(exp_id)
        return self._execute(
            "SELECT COUNT(*) FROM samples WHERE experiment_id=? AND attempt=? AND arm='cand'", (exp_id, attempt)
        ).fetchone()[0]

    def pair_times(self, exp_id: str) -> tuple[int, float]:
        """(benchmark pairs so far, seconds they took: both arms) of the experiment's latest attempt."""
        attempt = self._latest_attempt(exp_id)
        pairs, seconds = self._execute(
            "SELECT SUM(arm='cand'), SUM(COALESCE(seconds, 0)) FROM samples WHERE experiment_id=? AND attempt=? AND arm IN ('base','cand')",
            (exp_id, attempt)).fetchone()
        return int(pairs or 0), float(seconds or 0.0)

    def _latest_attempt(self, exp_id: str) -> int:
        row = self._execute("SELECT MAX(attempt) FROM samples WHERE experiment_id=?", (exp_id,)).fetchone()
        return row[0] or 0

    # --- ablation arms ----------------------------------------------------------------------

    def add_arm(self, label: str, arm: str, seed: int, planner: str | None, best_commit: str) -> None:
        self._execute("INSERT OR IGNORE INTO arms (label, arm, seed, planner, best_commit, status, created)"
                      " VALUES (?,?,?,?,?, 'planned', ?)", (label, arm, seed, planner, best_commit, time.time()))

    def update_arm(self, label: str, **fields: Any) -> None:
        sets = ", ".join(f"{key}=?" for key in fields)
        self._execute(f"UPDATE arms SET {sets} WHERE label=?", (*fields.values(), label))

    def arms(self) -> list[dict]:
        return self._rows("SELECT * FROM arms ORDER BY seed, arm DESC")

    def costs(self) -> list[dict]:
        return self._rows("SELECT * FROM costs ORDER BY id")

    # --- every metric, worker noise ---------------------------------------------------------

    def add_metrics(self, exp_id: str, attempt: int, bench: str, arm: str, idx: int, metrics: dict[str, float | None]) -> None:
        now = time.time()
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO metrics (experiment_id, attempt, bench, arm, idx, name, value, created) VALUES (?,?,?,?,?,?,?,?)",
                [(exp_id, attempt, bench, arm, idx, name, value, now) for name, value in metrics.items()],
            )

    def metrics(self, exp_id: str, attempt: int | None = None) -> list[dict]:
        """Rows (bench, arm, idx, name, value) of one attempt (default: the latest with metrics)."""
        if attempt is None:
            row = self._execute("SELECT MAX(attempt) FROM metrics WHERE experiment_id=?", (exp_id,)).fetchone()
            attempt = row[0] or 0
        return self._rows("SELECT bench, arm, idx, name, value FROM metrics WHERE experiment_id=? AND attempt=?"
                          " ORDER BY bench, arm, idx, name", (exp_id, attempt))

    def add_noise(self, worker: str, exp_id: str | None, pairs: int, noise: float | None, bound: float, action: str) -> None:
        self._execute(
            "INSERT INTO noise (worker, experiment_id, pairs, noise, bound, action, created) VALUES (?,?,?,?,?,?,?)",
            (worker, exp_id, pairs, noise, bound, action, time.time()),
        )

    def noise(self) -> list[dict]:
        return self._rows("SELECT * FROM noise ORDER BY id")

    # --- workers, costs, events -------------------------------------------------------------

    def add_worker(self, worker_id: str, backend: str, path: str | None, experiment_id: str | None, meta: dict | None = None) -> None:
        """Recorded *before* the worker is created, so cleanup can always find it."""
        self._execute(
            "INSERT OR REPLACE INTO workers (id, backend, status, path, experiment_id, created, meta) VALUES (?,?,?,?,?,?,?)",
            (worker_id, backend, WorkerStatus.REQUESTED, path, experiment_id, time.time(), json.dumps(meta or {})),
        )

    def set_worker_status(self, worker_id: str, status: WorkerStatus) -> None:
        status = WorkerStatus(status)
        ended = time.time() if status == WorkerStatus.DOWN else None
        self._execute("UPDATE workers SET status=?, ended=? WHERE id=?", (status, ended, worker_id))

    def update_worker_meta(self, worker_id: str, **fields: Any) -> None:
        """Merge `fields` into a worker's meta (e.g. a cloud job id, known only once it was submitted)."""
        with self._lock:
            worker = self.worker(worker_id)
            meta = {**(worker.meta if worker else {}), **fields}
            self._db.execute("UPDATE workers SET meta=? WHERE id=?", (json.dumps(meta), worker_id))

    def worker(self, worker_id: str) -> Worker | None:
        rows = self._rows("SELECT * FROM workers WHERE id=?", (worker_id,))
        return Worker.from_row(rows[0]) if rows else None

    def workers(self, live_only: bool = False, backend: str | None = None) -> list[Worker]:
        """Workers in creation order; `live_only`: not yet down; `backend`: only that backend's."""
        where = ["status != ?"] if live_only else []
        params: list = [WorkerStatus.DOWN] if live_only else []
        if backend is not None:
            where.append("backend = ?")
            params.append(backend)
        sql = "SELECT * FROM workers" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created"
        return [Worker.from_row(row) for row in self._rows(sql, tuple(params))]

    def add_cost(self, kind: str, usd: float, experiment_id: str | None = None, detail: str | None = None) -> None:
        with self._lock:
            self._execute(
                "INSERT INTO costs (experiment_id, kind, usd, detail, created) VALUES (?,?,?,?,?)",
                (experiment_id, kind, usd, detail, time.time()),
            )
            self._spent = None

    def cost(self, experiment_id: str | None = None) -> float:
        if experiment_id is None:
            with self._lock:
                version = self._execute("PRAGMA data_version").fetchone()[0]  # moves on other connections' commits
                if self._spent is None or self._spent[0] != version:
                    self._spent = (version, float(self._execute("SELECT COALESCE(SUM(usd), 0) FROM costs").fetchone()[0]))
                return self._spent[1]
        else:
            row = self._execute("SELECT COALESCE(SUM(usd), 0) FROM costs WHERE experiment_id=?", (experiment_id,)).fetchone()
        return float(row[0])

    def cost_with_detail(self, detail: str) -> float:
        """USD of every cost row whose detail is exactly `detail` (e.g. one cluster's name)."""
        row = self._execute("SELECT COALESCE(SUM(usd), 0) FROM costs WHERE detail=?", (detail,)).fetchone()
        return float(row[0])

    def compute_cost_with_detail_prefix(self, prefix: str) -> float:
        """USD of the compute cost rows whose detail starts with `prefix` (SQL LIKE, as always)."""
        row = self._execute("SELECT COALESCE(SUM(usd), 0) FROM costs WHERE kind='compute' AND detail LIKE ?",
                            (f"{prefix}%",)).fetchone()
        return float(row[0])

    def costs_by_kind(self) -> dict[str, float]:
        return {row["kind"]: float(row["usd"]) for row in self._rows("SELECT kind, SUM(usd) AS usd FROM costs GROUP BY kind ORDER BY kind")}

    def event(self, kind: str, message: str, **data: Any) -> None:
        self._execute(
            "INSERT INTO events (ts, kind, message, data) VALUES (?,?,?,?)",
            (time.time(), kind, message, json.dumps(data) if data else None),
        )

    def events(self) -> Iterator[dict]:
        return iter(self._rows("SELECT * FROM events ORDER BY id"))


# --- a read-only snapshot, for status / report / apply -----------------------------------------


@dataclass
class LedgerView:
    """A consistent snapshot of one run's ledger, read in a single read-only transaction."""

    run: dict
    experiments: list[dict]
    baseline_samples: list[float]
    samples: dict[str, dict[str, list[float]]]  # exp id -> arm -> values (latest attempt)
    costs_by_experiment: dict[str, float]
    costs_by_kind: dict[str, float]
    total_cost: float
    decision_effects: dict[str, dict] = field(default_factory=dict)  # exp id -> decisions.effect JSON
    metrics: dict[str, list[dict]] = field(default_factory=dict)  # exp id -> rows of its latest attempt (bench, arm, name, value)
    noise: list[dict] = field(default_factory=list)  # the workers' noise checks
    warnings: list[str] = field(default_factory=list)  # run-wide warnings the report repeats (e.g. sandbox: off)


def read_view(run_dir: Path) -> LedgerView:
    """Read RUN_DIR/ledger.sqlite without writing to it (so a running `optimize` is never blocked or
    written to), any schema version; RunDirError if it is unreadable or holds no run."""
    run_dir = Path(run_dir)
    db_path = run_dir / "ledger.sqlite"
    try:
        db = sqlite3.connect(f"file:{quote(str(db_path.resolve()))}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise RunDirError(f"cannot open the ledger in {run_dir}: {exc}") from None
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN")  # one snapshot for every query below, even while the run writes
        return _read_view(db, run_dir)
    except sqlite3.Error as exc:
        raise RunDirError(f"cannot read the ledger in {run_dir}: {exc}") from None
    finally:
        db.close()


def _view_rows(db: sqlite3.Connection, sql: str, params: tuple = ()) -> list[dict]:
    return [dict(row) for row in db.execute(sql, params).fetchall()]


def _read_view(db: sqlite3.Connection, run_dir: Path) -> LedgerView:
    runs = _view_rows(db, "SELECT * FROM runs LIMIT 1")
    if not runs:
        raise RunDirError(f"not a run directory: {run_dir} (the ledger has no run)")
    experiments = _view_rows(db, "SELECT * FROM experiments ORDER BY seq")

    # Samples of the latest attempt per experiment (and of the baseline).
    samples: dict[str, dict[str, list[float]]] = {}
    for row in _view_rows(
        db,
        "SELECT s.experiment_id, s.arm, s.value FROM samples s"
        " JOIN (SELECT experiment_id, MAX(attempt) AS attempt FROM samples GROUP BY experiment_id) latest"
        " ON s.experiment_id = latest.experiment_id AND s.attempt = latest.attempt"
        " ORDER BY s.experiment_id, s.arm, s.idx",
    ):
        samples.setdefault(row["experiment_id"], {}).setdefault(row["arm"], []).append(row["value"])
    baseline_samples = samples.pop("baseline", {}).get("baseline", [])

    costs_by_experiment: dict[str, float] = {}
    costs_by_kind: dict[str, float] = {}
    total = 0.0
    for row in _view_rows(db, "SELECT experiment_id, kind, usd FROM costs"):
        usd = float(row["usd"] or 0.0)
        total += usd
        costs_by_kind[row["kind"]] = costs_by_kind.get(row["kind"], 0.0) + usd
        if row["experiment_id"]:
            costs_by_experiment[row["experiment_id"]] = costs_by_experiment.get(row["experiment_id"], 0.0) + usd

    decision_effects: dict[str, dict] = {}
    for row in _view_rows(db, "SELECT experiment_id, effect FROM decisions WHERE effect IS NOT NULL"):
        try:
            decision_effects[row["experiment_id"]] = json.loads(row["effect"])
        except (TypeError, ValueError):
            pass

    metrics: dict[str, list[dict]] = {}
    noise: list[dict] = []
    tables = {row["name"] for row in _view_rows(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    if "metrics" in tables:  # ledgers from before schema 3 have none
        for row in _view_rows(
            db,
            "SELECT m.experiment_id, m.bench, m.arm, m.name, m.value FROM metrics m"
            " JOIN (SELECT experiment_id, MAX(attempt) AS attempt FROM metrics GROUP BY experiment_id) latest"
            " ON m.experiment_id = latest.experiment_id AND m.attempt = latest.attempt ORDER BY m.idx",
        ):
            metrics.setdefault(row.pop("experiment_id"), []).append(row)
        noise = _view_rows(db, "SELECT * FROM noise ORDER BY id")

    warnings = list(dict.fromkeys(row["message"] for row in _view_rows(db, "SELECT message FROM events WHERE kind = 'sandbox' ORDER BY id")))
    return LedgerView(runs[0], experiments, baseline_samples, samples, costs_by_experiment, costs_by_kind, total,
                      decision_effects, metrics, noise, warnings)
