"""The run's total cost, as the budget reads it: summed again only when a cost row was written, yet never stale.
(The hard stop that reads it every 0.2 s is tested end to end in tests/test_skypilot.py.)"""

import sqlite3

from research_agent.ledger import Ledger


def sums_of(statements: list[str]) -> int:
    return sum(1 for sql in statements if "SUM(usd)" in sql and "WHERE" not in sql)


def test_total_cost_is_summed_once_per_cost_row_and_sees_other_connections(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    statements: list[str] = []
    ledger._db.set_trace_callback(statements.append)  # observes the SQL sent; changes nothing
    assert ledger.cost() == 0.0
    for _ in range(50):  # the hard stop's ticks between two cost rows
        assert ledger.cost() == 0.0
    assert sums_of(statements) == 1
    ledger.event("notice", "not a cost row")
    ledger.add_cost("compute", 1.25, "r1-H1", detail="ra-run-1")
    assert ledger.cost() == 1.25 and ledger.cost() == 1.25
    assert sums_of(statements) == 2
    # another process (`research-agent down` charging idle time) writes through its own connection
    other = sqlite3.connect(tmp_path / "ledger.sqlite", isolation_level=None)
    other.execute("INSERT INTO costs (experiment_id, kind, usd, detail, created) VALUES (NULL, 'compute', 0.5, 'idle', 0)")
    other.close()
    assert ledger.cost() == 1.75
    assert ledger.cost("r1-H1") == 1.25
    ledger.close()
