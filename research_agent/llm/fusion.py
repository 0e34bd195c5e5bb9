"""Multi-model fusion: ask a panel of models, then pick, merge or debate to one answer.

Modes:

- **best-of** — a judge scores every answer; the final answer is the top member's answer
  *verbatim* (the judge can be worse than the best member, so it never rewrites). Judges favour
  positions, so the answers are shown in a shuffled order and (by default) again in the reverse
  order; `agreement` is the share of answer pairs the two passes rank the same way (1.0: the order
  did not matter). Scores are averaged over the passes.
- **merge** — the judge synthesises one answer, told the members can be wrong; its rationale and
  every member's answer stay in the result, so a bad synthesis can be spotted and undone.
- **debate** — each round every member sees the others' latest answers and revises its own
  (`rounds`); then the judge picks among the final answers as in best-of (without a judge, the
  first surviving member's final answer is returned).

Failures are handled, not ignored: members run concurrently, each with its own timeout
(`member_timeout`, retries included); a member that fails or times out is listed in `failed` and
the survivors go on; all failing raises `FusionError`. A judge that fails, times out or answers
garbage gives way to the best-ranked member answer (judge scores from a pass that did succeed,
else the panel's order) with a warning; a judge the provider does not know (or refuses the key for)
is a configuration error and raises `JudgeError`. Out of credits (402) stops everything
(`BudgetError`). Cost is reported per member, per judge call and in total — fusion costs several
single calls — and `wall_s` is the whole, concurrent, wall time.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UserError
from ..prompts import render
from ..text import first_json_object, one_line
from .client import AuthError, BudgetError, LLMClient, LLMError, LLMTimeout, ModelError, Usage

FUSION_MODES = ("best-of", "merge", "debate")  # also the planner panel's (plan/choose.py)
MAX_PANEL = 8
LABELS = "ABCDEFGH"


class FusionError(UserError):
    """Fusion could not produce an answer (bad settings, or every panel member failed)."""


class JudgeError(UserError):
    """The judge model is not usable here (unknown model id, key refused)."""


@dataclass
class MemberAnswer:
    model: str
    text: str | None
    latency_s: float
    usage: Usage | None
    error: str | None
    rounds: list[str] = field(default_factory=list)  # debate: this member's answer after each round

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.text)


@dataclass
class FusionResult:
    final: str
    mode: str
    members: list[MemberAnswer]
    judge: str | None
    rationale: str
    scores: dict  # model -> mean judge score (best-of, debate with a judge)
    agreement: float | None  # best-of with both orders: share of pairs ranked alike in both passes
    total_cost_usd: float | None
    wall_s: float
    warnings: list[str]
    failed: list[str]
    chosen: str | None = None  # the member whose answer is `final` verbatim (best-of, debate, fallbacks)
    judge_calls: list[MemberAnswer] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


async def fuse(client: LLMClient, prompt: str | list[dict], models: list[str], judge: str | None, mode: str = "best-of",
               rounds: int = 1, member_timeout: float = 120, both_orders: bool = True, seed: int | None = None, *,
               judge_timeout: float | None = None, temperature: float | None = None, max_tokens: int | None = None) -> FusionResult:
    """Ask `models` concurrently and fuse their answers; see the module docstring."""
    messages = prompt_messages(prompt)
    models = check_panel(models)
    mode = check_mode(mode)
    if mode in ("best-of", "merge") and not (judge and judge.strip()):
        raise FusionError(f"--mode {mode} needs a judge model (--judge MODEL)")
    if mode == "debate" and (not isinstance(rounds, int) or rounds < 1):
        raise FusionError("--rounds must be at least 1")
    if member_timeout <= 0:
        raise FusionError("the member timeout must be positive")
    judge = judge.strip() if judge else None
    rng = random.Random(seed)
    client.async_sdk()  # the SDK import and client set-up happen once, before the clock and the tasks start
    started = time.monotonic()
    run = _Run(client, member_timeout, judge_timeout or member_timeout, temperature, max_tokens)

    if judge and judge in models:
        run.warnings.append(f"the judge {judge} is also on the panel: it may favour its own answer")
    members = await _all(run.ask(model, messages) for model in models)
    survivors = [m for m in members if m.ok]
    if not survivors:
        details = "; ".join(f"{m.model}: {m.error}" for m in members)
        raise FusionError(f"all {len(members)} panel members failed — {details}")
    for member in members:
        if not member.ok:
            run.warnings.append(f"{member.model} failed ({member.error}); continuing with {len(survivors)} of {len(members)}")

    if mode == "debate":
        await _debate(run, messages, members, rounds)
        candidates = [m for m in members if m.ok]
    else:
        candidates = survivors

    if len(candidates) == 1:
        only = candidates[0]
        if len(members) > 1:
            run.warnings.append(f"only {only.model} answered: its answer is returned without judging")
        outcome = _Outcome(only.text or "", "only one answer: nothing to compare", chosen=only.model)
    elif mode == "merge":
        outcome = await _merge(run, messages, candidates, judge, rng)  # type: ignore[arg-type]
    elif judge:
        outcome = await _best_of(run, messages, candidates, judge, both_orders, rng)
    else:  # debate without a judge
        first = candidates[0]
        outcome = _Outcome(first.text or "", f"no judge: the first panel member's final answer ({first.model})", chosen=first.model)

    total, unknown = _total_cost(members + run.judge_calls)
    if unknown:
        run.warnings.append(f"cost unknown for {', '.join(unknown)} (no provider cost, not in the price table): total not known")
    timed_out = [a.model for a in members + run.judge_calls if a.error and "timed out" in a.error]
    if timed_out and total is not None:
        run.warnings.append(f"timed-out calls are not counted in the total ({', '.join(timed_out)}): a provider may still bill them")
    result = FusionResult(
        final=outcome.final, mode=mode, members=members, judge=judge, rationale=outcome.rationale, scores=outcome.scores,
        agreement=outcome.agreement, total_cost_usd=total, wall_s=time.monotonic() - started, warnings=run.warnings,
        failed=[m.model for m in members if not m.ok], chosen=outcome.chosen, judge_calls=run.judge_calls,
    )
    if client.ledger is not None:
        client.ledger.event("fusion", f"{mode} of {len(models)}: {result.chosen or 'merged'} in {result.wall_s:.1f}s",
                            mode=mode, models=models, judge=judge, chosen=result.chosen, failed=result.failed,
                            agreement=result.agreement, total_cost_usd=total, wall_s=round(result.wall_s, 4))
    return result


def fuse_sync(client: LLMClient, prompt: str | list[dict], models: list[str], judge: str | None, mode: str = "best-of",
              rounds: int = 1, member_timeout: float = 120, both_orders: bool = True, seed: int | None = None,
              **options: Any) -> FusionResult:
    """`fuse` from synchronous code (not from inside a running event loop)."""

    async def main() -> FusionResult:
        try:
            return await fuse(client, prompt, models, judge, mode, rounds, member_timeout, both_orders, seed, **options)
        finally:
            await client.aclose()

    return asyncio.run(main())


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def prompt_messages(prompt: str | list[dict]) -> list[dict]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise FusionError("empty prompt")
        return [{"role": "user", "content": prompt}]
    if not prompt or not any(str(m.get("content") or "").strip() for m in prompt):
        raise FusionError("empty prompt")
    return list(prompt)


def check_panel(models: list[str]) -> list[str]:
    models = [m.strip() for m in models if m and m.strip()]
    if not models:
        raise FusionError("no models: give a panel of 1 to 8 (--models a,b,c)")
    if len(models) > MAX_PANEL:
        raise FusionError(f"{len(models)} models: a panel has at most {MAX_PANEL}")
    seen = set()
    for model in models:
        if model in seen:
            raise FusionError(f"model {model!r} is listed twice")
        seen.add(model)
    return models


def check_mode(mode: str) -> str:
    if mode not in FUSION_MODES:
        raise FusionError(f"unknown mode {mode!r}: use one of {', '.join(FUSION_MODES)}")
    return mode


# ---------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------


@dataclass
class _Outcome:
    final: str
    rationale: str
    scores: dict = field(default_factory=dict)
    agreement: float | None = None
    chosen: str | None = None


class _Run:
    """The calls of one fusion, with its settings and what it has noticed."""

    def __init__(self, client: LLMClient, member_timeout: float, judge_timeout: float, temperature, max_tokens):
        self.client = client
        self.member_timeout = member_timeout
        self.judge_timeout = judge_timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.warnings: list[str] = []
        self.judge_calls: list[MemberAnswer] = []

    async def call(self, model: str, messages: list[dict], timeout: float, judge: bool = False) -> MemberAnswer:
        """One call, bounded by `timeout` in total (retries included). Only a 402 (and, for the judge,
        an unknown model or a refused key) escapes; any other failure is the answer's `error`."""
        started = time.monotonic()
        try:
            completion = await asyncio.wait_for(
                self.client.acomplete(model, messages, temperature=None if judge else self.temperature,
                                      max_tokens=None if judge else self.max_tokens, timeout=timeout),
                timeout,
            )
        except BudgetError:
            raise
        except (ModelError, AuthError) as error:
            if judge and _unusable(error):
                raise JudgeError(f"judge {model!r} is not usable: {error}") from error
            return MemberAnswer(model, None, time.monotonic() - started, None, _without(model, str(error)))
        except (asyncio.TimeoutError, TimeoutError):
            return MemberAnswer(model, None, time.monotonic() - started, None, f"timed out after {timeout:g} s")
        except LLMTimeout:
            return MemberAnswer(model, None, time.monotonic() - started, None, f"timed out after {timeout:g} s")
        except LLMError as error:
            return MemberAnswer(model, None, time.monotonic() - started, None, _without(model, str(error)))
        text = completion.text.strip()
        error = None if text else f"empty answer (finish reason: {completion.finish_reason or 'unknown'})"
        return MemberAnswer(model, completion.text if text else None, completion.latency_s, completion.usage, error)

    async def ask(self, model: str, messages: list[dict]) -> MemberAnswer:
        return await self.call(model, messages, self.member_timeout)

    async def ask_judge(self, model: str, messages: list[dict]) -> MemberAnswer:
        """A judge call; the caller appends it to `judge_calls` (in a fixed order, not completion order)."""
        return await self.call(model, messages, self.judge_timeout, judge=True)


def _without(model: str, message: str) -> str:
    """The client's messages start with the model id; the answer already names it."""
    return message[len(model) + 2:] if message.startswith(f"{model}: ") else message


def _unusable(error: LLMError) -> bool:
    """A key refused, or a model the provider does not know — not a request it could not take this
    time (too long a context, say), after which the judge gives way to the members with a warning."""
    if isinstance(error, AuthError) or error.status == 404:
        return True
    text = str(error).split("): ", 1)[-1]
    return bool(re.search(r"model", text, re.I) and
                re.search(r"not (a )?valid|does not exist|not exist|not found|unknown|no endpoints", text, re.I))


async def _all(coros) -> list:
    """Run concurrently; if one raises (a budget stop, a judge error), cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


# ---------------------------------------------------------------------------
# Debate
# ---------------------------------------------------------------------------

async def _debate(run: _Run, messages: list[dict], members: list[MemberAnswer], rounds: int) -> None:
    for member in members:
        if member.ok:
            member.rounds.append(member.text or "")
    active = [m for m in members if m.ok]
    if len(active) < 2:
        run.warnings.append("only one member answered: nothing to debate")
        return
    for round_no in range(1, rounds + 1):
        latest = {m.model: m.rounds[-1] for m in members if m.rounds}

        def revision(member: MemberAnswer) -> list[dict]:
            others = [text for model, text in latest.items() if model != member.model]
            return [*messages, {"role": "assistant", "content": member.rounds[-1]},
                    {"role": "user", "content": render(__file__, "debate.j2", others=others)}]

        replies = await _all(run.ask(m.model, revision(m)) for m in active)
        still = []
        for member, reply in zip(active, replies):
            member.latency_s += reply.latency_s
            if reply.usage is not None:
                member.usage = reply.usage + member.usage if member.usage else reply.usage
            if reply.ok:
                member.rounds.append(reply.text or "")
                member.text = reply.text
                still.append(member)
            else:
                run.warnings.append(f"{member.model} failed in debate round {round_no} ({reply.error}); "
                                    f"its round {round_no - 1} answer stands")
        active = still
        if len(active) < 2:
            if round_no < rounds:
                run.warnings.append(f"debate stopped after round {round_no}: fewer than two members left")
            break


# ---------------------------------------------------------------------------
# Judging
# ---------------------------------------------------------------------------

# The judge's prompts are templates in prompts/: best_of_system.j2, merge_system.j2 and panel.j2
# (the question and the answers, labelled); the debate's revision request is debate.j2.


def _question(messages: list[dict]) -> str:
    if len(messages) == 1:
        return str(messages[0].get("content") or "")
    return "\n\n".join(f"[{m.get('role', 'user')}]\n{m.get('content') or ''}" for m in messages)


def _panel_prompt(messages: list[dict], answers: list[MemberAnswer], order: list[int]) -> str:
    return render(__file__, "panel.j2", question=_question(messages),
                  answers=[(label, answers[index].text) for label, index in zip(LABELS, order)])


@dataclass
class _Pass:
    order: list[int]
    scores: dict[int, float]  # index into the answers -> score
    best: int
    rationale: str


async def _best_of(run: _Run, messages: list[dict], answers: list[MemberAnswer], judge: str, both_orders: bool,
                   rng: random.Random) -> _Outcome:
    n = len(answers)
    first = list(range(n))
    rng.shuffle(first)
    orders = [first, first[::-1]] if both_orders else [first]

    async def one_pass(order: list[int]) -> tuple[MemberAnswer, _Pass | str]:
        prompt = [{"role": "system", "content": render(__file__, "best_of_system.j2")},
                  {"role": "user", "content": _panel_prompt(messages, answers, order)}]
        reply = await run.ask_judge(judge, prompt)
        if not reply.ok:
            return reply, reply.error or "no answer"
        return reply, _parse_scores(reply.text or "", order) or f"unreadable verdict: {one_line(reply.text or '', 80)!r}"

    replies = await _all(one_pass(order) for order in orders)
    run.judge_calls.extend(reply for reply, _ in replies)
    passes = [verdict for _, verdict in replies]
    good = [p for p in passes if isinstance(p, _Pass)]
    for number, p in enumerate(passes, 1):
        if not isinstance(p, _Pass):
            run.warnings.append(f"judge {judge} failed on order {number} ({p})")
    if not good:
        fallback = answers[0]
        run.warnings.append(f"judge {judge} failed: returning the best-ranked member answer unjudged ({fallback.model}, first in the panel)")
        return _Outcome(fallback.text or "", f"judge failed: {passes[0]}", chosen=fallback.model)

    means: dict[int, float] = {}
    for index in range(n):
        values = [p.scores[index] for p in good if index in p.scores]
        if values:
            means[index] = sum(values) / len(values)
    votes = {index: sum(1 for p in good if p.best == index) for index in range(n)}
    ranked = sorted(range(n), key=lambda i: (-means.get(i, float("-inf")), -votes[i], i))
    winner = ranked[0]

    agreement = None
    if len(good) == 2:
        agreement = _concordance(good[0].scores, good[1].scores, n)
        if good[0].best != good[1].best:
            run.warnings.append(
                f"the judge's pick changed with the order of the answers ({answers[good[0].best].model} vs "
                f"{answers[good[1].best].model}): position bias; agreement {agreement:.2f}")
        elif agreement < 1:
            run.warnings.append(f"the judge ranked the answers differently in the two orders: agreement {agreement:.2f}")
    elif both_orders and n > 1:
        run.warnings.append("only one judging order succeeded: position bias not checked")

    notes = []
    for number, p in enumerate(good, 1):
        shown = ", ".join(f"{LABELS[k]}={answers[i].model}" for k, i in enumerate(p.order))
        notes.append(f"order {number} ({shown}): best {answers[p.best].model} — {p.rationale}".rstrip(" —"))
    scores = {answers[i].model: round(means[i], 4) for i in range(n) if i in means}
    return _Outcome(answers[winner].text or "", "\n".join(notes), scores, agreement, answers[winner].model)


def _concordance(a: dict[int, float], b: dict[int, float], n: int) -> float:
    """Share of answer pairs ordered alike (better, worse or tied) in both passes."""
    pairs = same = 0
    for i in range(n):
        for j in range(i + 1, n):
            if i in a and j in a and i in b and j in b:
                pairs += 1
                if _sign(a[i] - a[j]) == _sign(b[i] - b[j]):
                    same += 1
    return same / pairs if pairs else 1.0


def _sign(x: float) -> int:
    return (x > 1e-9) - (x < -1e-9)


def _parse_scores(text: str, order: list[int]) -> _Pass | None:
    data = first_json_object(text)
    if data is None:
        return None
    labels = {LABELS[k]: index for k, index in enumerate(order)}

    def label_of(value: Any) -> str | None:
        match = re.fullmatch(r"\s*(?:answer\s+)?([A-H])\s*", str(value), re.IGNORECASE)
        return match.group(1).upper() if match and match.group(1).upper() in labels else None

    scores: dict[int, float] = {}
    raw_scores = data.get("scores")
    if isinstance(raw_scores, dict):
        for key, value in raw_scores.items():
            label = label_of(key)
            try:
                score = float(value)
            except (TypeError, ValueError):
                continue
            if label:
                scores[labels[label]] = score
    best_label = label_of(data.get("best", ""))
    if best_label is None and not scores:
        return None
    if best_label is not None:
        best = labels[best_label]
        if not scores:
            scores = {index: (1.0 if index == best else 0.0) for index in order}
    else:
        best = max(scores, key=lambda i: (scores[i], -order.index(i)))
    return _Pass(order, scores, best, " ".join(str(data.get("rationale") or "").split()))


async def _merge(run: _Run, messages: list[dict], answers: list[MemberAnswer], judge: str, rng: random.Random) -> _Outcome:
    order = list(range(len(answers)))
    rng.shuffle(order)
    prompt = [{"role": "system", "content": render(__file__, "merge_system.j2")},
              {"role": "user", "content": _panel_prompt(messages, answers, order)}]
    reply = await run.ask_judge(judge, prompt)
    run.judge_calls.append(reply)
    final, rationale = _parse_merge(reply.text or "") if reply.ok else ("", "")
    if not final:
        fallback = answers[0]
        reason = reply.error or "no answer in its reply"
        run.warnings.append(f"judge {judge} failed ({reason}): returning the best-ranked member answer unmerged ({fallback.model}, first in the panel)")
        return _Outcome(fallback.text or "", f"judge failed: {reason}", chosen=fallback.model)
    shown = ", ".join(f"{LABELS[k]}={answers[i].model}" for k, i in enumerate(order))
    return _Outcome(final, f"({shown}) {rationale}".strip())


def _parse_merge(text: str) -> tuple[str, str]:
    rationale_match = re.search(r"<rationale>(.*?)(?:</rationale>|<answer>|$)", text, re.DOTALL | re.IGNORECASE)
    rationale = " ".join(rationale_match.group(1).split()) if rationale_match else ""
    answer_match = re.search(r"<answer>(.*?)(?:</answer>|$)", text, re.DOTALL | re.IGNORECASE)
    if answer_match:
        return answer_match.group(1).strip(), rationale
    rest = re.sub(r"<rationale>.*?(</rationale>|$)", "", text, flags=re.DOTALL | re.IGNORECASE).strip()
    return rest, rationale


# ---------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------


def _total_cost(calls: list[MemberAnswer]) -> tuple[float | None, list[str]]:
    total = 0.0
    unknown: list[str] = []
    for call in calls:
        if call.usage is None:
            continue  # the call failed before any answer: nothing billed that we can know of
        if call.usage.cost_usd is None:
            if call.model not in unknown:
                unknown.append(call.model)
        else:
            total += call.usage.cost_usd
    return (None if unknown else total), unknown
