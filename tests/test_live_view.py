"""The live view: pairs as n/max, an ETA from the running pairs' own times, titles cut at word boundaries."""

from types import SimpleNamespace

from rich.console import Console

from research_agent.ledger import Ledger
from research_agent.orchestrator import Progress
from research_agent.task import Experiments
from research_agent.view import LiveView, cut_title, eta_seconds, fmt_eta


def test_titles_are_cut_at_a_word_boundary():
    title = "kernel: i-k-j loop order, four rows of B per pass with a remainder loop"
    cut = cut_title(title, 48)
    assert cut == "kernel: i-k-j loop order, four rows of B per…" and len(cut) <= 48
    assert title.startswith(cut[:-1]) and cut_title("short", 48) == "short"


def test_eta_is_the_slowest_running_one_then_the_pending_ones_over_the_workers():
    # 4 of 15 pairs in 8 s: 11 more pairs ≤ 22 s; the other 10/15 in 5 s: ≤ 2.5 s; then 2 pending of 30 s on 2 workers.
    assert eta_seconds([(4, 15, 8.0), (10, 15, 5.0)], 2, [30.0], 2) == 22.0 + 30.0
    assert eta_seconds([(0, 15, 0.0)], 0, [], 2) is None  # no pair timed yet
    assert eta_seconds([(5, 15, 10.0)], 1, [], 1) == 10.0 * 2 + 30.0  # nothing finished: a pending one at max pairs
    assert fmt_eta(52.0) == "ETA ≤ 52s" and fmt_eta(600.0) == "ETA ≤ 10 min" and fmt_eta(None) == "ETA –"


def test_live_view_shows_pairs_of_max_an_eta_and_multiples(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.create_run("run", "t", "fp")
    ledger.update_run(baseline_median=2.0, baseline_cv=0.01)
    ledger.add_experiment("r1-H1", "H1", "kernel: i-k-j loop order, four rows of B per pass with a remainder loop", 1)
    ledger.add_experiment("r1-H2", "H2", "Done one", 1)
    ledger.add_experiment("r1-H3", "H3", "Waiting one", 1)
    attempt = ledger.start_experiment("r1-H1", "a" * 40, "ra/run/H1", "local-1")
    for index in range(4):
        ledger.add_sample("r1-H1", attempt, "base", index, 2.0, 1.0)
        ledger.add_sample("r1-H1", attempt, "cand", index, 5.0, 1.0)
    ledger.start_experiment("r1-H2", "a" * 40, "ra/run/H2", "local-2")
    ledger.decide("r1-H2", "kept", "ok", {"median": 14.629, "ci": [14.01, 15.3], "n": 6}, cand_commit="c" * 40)
    orchestrator = SimpleNamespace(ledger=ledger, progress=Progress(message="round 1"), run=SimpleNamespace(run_id="run"),
                                   task=SimpleNamespace(experiments=Experiments(parallel=2, max_repeats=15)))
    console = Console(width=140, record=True)
    console.print(LiveView(orchestrator, console))
    text = console.export_text()
    assert "4/15" in text and "6/15" in text
    assert "kernel: i-k-j loop order, four rows of B per…" in text
    narrow = Console(width=110, record=True)
    narrow.print(LiveView(orchestrator, narrow))
    assert "│ kernel: i-k-j loop…" in narrow.export_text()  # less room: still cut at a word
    assert "+1462.9% (×15.6)" in text
    assert "1 running, 1 pending; ETA ≤" in text
