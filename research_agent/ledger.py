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
from pathlib import Path
from typing import Any, Iterator

MIGRATIONS = [
    # 1: the core loop
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        task_name TEXT NOT NULL,
        task_fingerprint TEXT NOT NULL,
        created REAL NOT NULL,
        status TEXT NOT NULL,            -- running | interrupted | done | failed
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
        status TEXT NOT NULL,            -- requested | up | down
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
            "INSERT INTO runs (id, task_name, task_fingerprint, created, status) VALUES (?,?,?,?, 'running')",
            (run_id, task_name, fingerprint, time.time()),
        )

    def run(self) -> dict | None:
        rows = self._rows("SELECT * FROM runs LIMIT 1")
        return rows[0] if rows else None

    def options(self) -> dict:
        run = self.run() or {}
        return json.loads(run.get("options") or "{}")

    def update_run(self, **fields: Any) -> None:
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
            "INSERT OR REPLACE INTO workers (id, backend, status, path, experiment_id, created, meta) VALUES (?,?, 'requested', ?,?,?,?)",
            (worker_id, backend, path, experiment_id, time.time(), json.dumps(meta or {})),
        )

    def set_worker_status(self, worker_id: str, status: str) -> None:
        ended = time.time() if status == "down" else None
        self._execute("UPDATE workers SET status=?, ended=? WHERE id=?", (status, ended, worker_id))

    def update_worker_meta(self, worker_id: str, **fields: Any) -> None:
        """Merge `fields` into a worker's meta (e.g. a cloud job id, known only once it was submitted)."""
        with self._lock:
            row = self._db.execute("SELECT meta FROM workers WHERE id=?", (worker_id,)).fetchone()
            meta = {**json.loads((row[0] if row else None) or "{}"), **fields}
            self._db.execute("UPDATE workers SET meta=? WHERE id=?", (json.dumps(meta), worker_id))

    def workers(self, live_only: bool = False) -> list[dict]:
        if live_only:
            return self._rows("SELECT * FROM workers WHERE status != 'down' ORDER BY created")
        return self._rows("SELECT * FROM workers ORDER BY created")

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

    def costs_by_kind(self) -> dict[str, float]:
        return {row["kind"]: float(row["usd"]) for row in self._rows("SELECT kind, SUM(usd) AS usd FROM costs GROUP BY kind ORDER BY kind")}

    def event(self, kind: str, message: str, **data: Any) -> None:
        self._execute(
            "INSERT INTO events (ts, kind, message, data) VALUES (?,?,?,?)",
            (time.time(), kind, message, json.dumps(data) if data else None),
        )

    def events(self) -> Iterator[dict]:
        return iter(self._rows("SELECT * FROM events ORDER BY id"))
