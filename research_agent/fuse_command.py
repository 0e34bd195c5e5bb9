"""`research-agent fuse`: ask a panel of models one question and fuse their answers.

The command's logic (the CLI only parses options): validate the input — each problem is one
`UserError` line — build the client, run the fusion, print a rich panel table and the fused answer,
or with `--json` the `FusionResult` as one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import UserError


def read_prompt(prompt: str | None) -> str:
    if prompt is None:
        raise UserError("no prompt: give PROMPT, or - to read it from stdin")
    text = sys.stdin.read() if prompt == "-" else prompt
    if not text.strip():
        raise UserError("empty prompt" + (" on stdin" if prompt == "-" else ""))
    return text


def load_prices(path: Path | None) -> dict | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise UserError(f"{path}: cannot read the price table: {error.strerror or error}") from None
    import yaml

    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not YAML or JSON: {' '.join(str(error).split())}") from None
    from .prices import parse_prices

    parse_prices(data, where=str(path))  # validate now, with the file's name in the message
    return data


def run_fuse(prompt: str | None, models: str | None, judge: str | None, mode: str, rounds: int, as_json: bool,
             base_url: str | None, member_timeout: float, seed: int | None = None, one_order: bool = False,
             prices: Path | None = None) -> None:
    from .llm.client import LLMClient
    from .llm.fusion import check_mode, check_panel, fuse_sync

    # Every check that needs no network comes first, so each mistake is reported before any spend.
    mode = check_mode(mode)
    panel = check_panel((models or "").split(","))
    if mode in ("best-of", "merge") and not (judge and judge.strip()):
        raise UserError(f"--mode {mode} needs a judge model: --judge MODEL")
    if rounds < 1:
        raise UserError("--rounds must be at least 1")
    if member_timeout <= 0:
        raise UserError("--member-timeout must be positive")
    text = read_prompt(prompt)
    price_table = load_prices(prices)
    client = LLMClient(base_url=base_url, timeout=member_timeout, prices=price_table)
    result = fuse_sync(client, text, panel, judge, mode, rounds, member_timeout, not one_order, seed)
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print_result(result)


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def print_result(result) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console = Console()
    table = Table(title=f"fuse · {result.mode} · {len(result.members)} models", title_justify="left")
    table.add_column("model", no_wrap=True)
    table.add_column("role", no_wrap=True)
    table.add_column("status")
    table.add_column("latency", justify="right", no_wrap=True)
    table.add_column("tokens in/out", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    if result.scores:
        table.add_column("score", justify="right", no_wrap=True)

    def row(answer, role: str) -> None:
        if answer.error:
            status = Text(answer.error if answer.error.startswith("timed out") else f"failed: {answer.error}", style="red")
        elif role == "member" and answer.model == result.chosen:
            status = Text("ok, chosen", style="bold green")
        else:
            status = Text("ok", style="green")
        usage = answer.usage
        tokens = f"{usage.prompt_tokens}/{usage.completion_tokens}" if usage else "-"
        cost = _usd(usage.cost_usd) if usage else "-"
        cells = [Text(answer.model), role, status, f"{answer.latency_s:.2f} s", tokens, cost]
        if result.scores:
            score = result.scores.get(answer.model) if role == "member" else None
            cells.append("" if score is None else f"{score:g}")
        table.add_row(*cells)

    for member in result.members:
        row(member, "member" if not member.rounds else f"member ({len(member.rounds) - 1} rev.)")
    for number, call in enumerate(result.judge_calls, 1):
        row(call, "judge" if len(result.judge_calls) == 1 else f"judge {number}")
    console.print(table)

    if result.mode == "merge" and not result.chosen:
        title = f"fused answer (merged by {result.judge})"
    elif result.chosen:
        title = f"fused answer ({result.chosen}'s, verbatim)"
    else:
        title = "fused answer"
    console.print(Panel(Text(result.final), title=title, title_align="left"))
    if result.rationale:
        console.print(Text("rationale: " + result.rationale, style="dim"))
    facts = [f"mode {result.mode}"]
    if result.judge:
        facts.append(f"judge {result.judge}")
    if result.agreement is not None:
        facts.append(f"agreement {result.agreement:.2f}")
    facts.append(f"total cost {_usd(result.total_cost_usd)}")
    facts.append(f"wall {result.wall_s:.2f} s")
    if result.failed:
        facts.append(f"failed: {', '.join(result.failed)}")
    console.print(Text(" · ".join(facts)))
    for warning in result.warnings:
        console.print(Text("warning: " + warning, style="yellow"))
