"""Which distiller writes the plan: the LLM planner when one is configured and usable, else the extractive one.

The planner comes from the task spec's `planner:` block —

    planner: {model: openai/gpt-5}                                  # one model
    planner: {models: [a, b, c], judge: a, mode: merge}             # a fusion panel
    planner: {model: m, base_url: "http://localhost:8000/v1"}       # any OpenAI-compatible endpoint

— with `--planner-models a,b`, `--planner-judge j` and `--planner-mode m` taking precedence (they are
written into the run's resolved task.yaml, so `resume` plans the same way). Keys come from the
environment only (RESEARCH_AGENT_API_KEY, OPENROUTER_API_KEY, OPENAI_API_KEY) and are never written.

Fallbacks, each announced with one notice line: no planner configured, `--offline`, or no API key ->
the extractive distiller. Asked for on the command line (`--planner-models`), a missing key is an
error instead, raised before the baseline runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import TaskError, UserError
from ..llm.fusion import FUSION_MODES

DEFAULT_MODE = "merge"
KEYS = ("model", "models", "judge", "mode", "rounds", "base_url", "temperature", "max_tokens", "timeout",
        "max_retries", "prices", "json_mode", "max_hypotheses")
SECRET_KEYS = ("api_key", "key", "token", "openai_api_key", "openrouter_api_key")


@dataclass
class PlannerSpec:
    model: str | None = None
    models: list[str] = field(default_factory=list)
    judge: str | None = None
    mode: str = DEFAULT_MODE
    rounds: int = 1
    base_url: str | None = None
    temperature: float | None = None  # the provider's default (some reasoning models accept no other)
    max_tokens: int | None = None
    timeout: float | None = None
    max_retries: int | None = None
    prices: dict | None = None
    json_mode: bool = False
    max_hypotheses: int = 10

    @property
    def configured(self) -> bool:
        return bool(self.model or self.models)

    @property
    def fusion(self) -> bool:
        return len(self.models) > 1

    def describe(self) -> str:
        if self.fusion:
            return f"fusion {self.mode} of {', '.join(self.models)} (judge {self.judge or self.models[0]})"
        return f"model {self.model or (self.models[0] if self.models else '?')}"

    def client_config(self) -> dict:
        return {k: getattr(self, k) for k in ("base_url", "timeout", "max_retries", "prices") if getattr(self, k) is not None}


def planner_spec(planner: dict | None, where: str = "planner", error: type[UserError] = TaskError) -> PlannerSpec:
    """The task's `planner:` block, checked; `error` is raised with `where` naming the block."""
    planner = dict(planner or {})
    for key in planner:
        if str(key).lower() in SECRET_KEYS:
            raise error(f"{where}.{key}: keys are read from the environment only (RESEARCH_AGENT_API_KEY, "
                        "OPENROUTER_API_KEY or OPENAI_API_KEY), never from a file")
        if key not in KEYS:
            raise error(f"{where}.{key}: unknown key (expected one of: {', '.join(KEYS)})")
    spec = PlannerSpec()
    model = planner.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise error(f"{where}.model: must be a model id, got {model!r}")
    models = planner.get("models")
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",")]
    if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) and m.strip() for m in models)):
        raise error(f"{where}.models: must be a list of model ids, got {models!r}")
    models = [m.strip() for m in models or []]
    if len(set(models)) != len(models):
        raise error(f"{where}.models: a model is listed twice")
    if model and models:
        raise error(f"{where}: give model (one model) or models (a fusion panel), not both")
    if len(models) == 1:
        model, models = models[0], []
    spec.model = model.strip() if model else None
    spec.models = models
    judge = planner.get("judge")
    if judge is not None and (not isinstance(judge, str) or not judge.strip()):
        raise error(f"{where}.judge: must be a model id, got {judge!r}")
    spec.judge = judge.strip() if judge else None
    mode = planner.get("mode", DEFAULT_MODE)
    if mode not in FUSION_MODES:
        raise error(f"{where}.mode: unknown mode {mode!r} (expected one of: {', '.join(FUSION_MODES)})")
    spec.mode = mode
    if (spec.judge or "mode" in planner) and not spec.configured:
        raise error(f"{where}: judge and mode need models (a fusion panel)")
    if spec.fusion and spec.judge is None:
        spec.judge = spec.models[0]
    for key, kind, low in (("rounds", int, 1), ("max_tokens", int, 1), ("max_retries", int, 0),
                           ("max_hypotheses", int, 1), ("timeout", float, 1e-9), ("temperature", float, 0.0)):
        if key not in planner or planner[key] is None:
            continue
        value = planner[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or float(value).is_integer())
        if not ok or value < low:
            raise error(f"{where}.{key}: must be a {'whole ' if kind is int else ''}number >= {low:g}, got {value!r}")
        setattr(spec, key, kind(value))
    base_url = planner.get("base_url")
    if base_url is not None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise error(f"{where}.base_url: must be an http(s) URL, got {base_url!r}")
        spec.base_url = base_url
    if planner.get("prices") is not None:
        from ..prices import parse_prices

        try:
            parse_prices(planner["prices"], f"{where}.prices")
        except UserError as e:
            raise error(str(e)) from None
        spec.prices = planner["prices"]
    json_mode = planner.get("json_mode", False)
    if not isinstance(json_mode, bool):
        raise error(f"{where}.json_mode: must be true or false, got {json_mode!r}")
    spec.json_mode = json_mode
    return spec


def cli_planner(models: str | None, judge: str | None, mode: str | None) -> dict:
    """`--planner-models/--planner-judge/--planner-mode` as a partial `planner:` block (empty: none given)."""
    out: dict[str, Any] = {}
    if models is not None:
        names = [m.strip() for m in models.split(",") if m.strip()]
        if not names:
            raise UserError("--planner-models: give one model id, or several separated by commas")
        if len(set(names)) != len(names):
            raise UserError("--planner-models: a model is listed twice")
        out["models"] = names
    if judge is not None:
        if not judge.strip():
            raise UserError("--planner-judge: give a model id")
        out["judge"] = judge.strip()
    if mode is not None:
        if mode not in FUSION_MODES:
            raise UserError(f"--planner-mode: unknown mode {mode!r} (expected one of: {', '.join(FUSION_MODES)})")
        out["mode"] = mode
    return out


def merge_planner(task_planner: dict | None, cli: dict) -> dict:
    """The task's planner block with the CLI's choices over it (checked: errors name the options)."""
    planner = dict(task_planner or {})
    if "models" in cli:
        planner.pop("model", None)
        planner.pop("models", None)
        names = cli["models"]
        if len(names) == 1:
            planner["model"] = names[0]
        else:
            planner["models"] = list(names)
            if "judge" not in cli and planner.get("judge") not in names:
                planner.pop("judge", None)  # the task's judge was for another panel: the first model judges
    for key in ("judge", "mode"):
        if key in cli:
            planner[key] = cli[key]
    try:
        planner_spec(planner, "planner", UserError)
    except UserError as e:
        if ("judge" in cli or "mode" in cli) and "need models" in str(e):
            raise UserError("--planner-judge / --planner-mode need a panel: --planner-models a,b "
                            "(or planner.models in the task)") from None
        raise
    return planner


def check_planner(task: Any, offline: bool, explicit: bool) -> PlannerSpec:
    """Before anything runs: the planner block is valid, and a planner asked for on the command line
    has what it needs (no `--offline`, an API key in the environment)."""
    where = f"{task.source}: planner" if getattr(task, "source", None) else "planner"
    spec = planner_spec(task.planner, where)
    if explicit and spec.configured:
        if offline:
            raise UserError("--offline makes no model call: drop --planner-models (or --offline)")
        from ..llm.client import NO_KEY_MESSAGE, resolve_api_key, resolve_base_url

        try:
            resolve_api_key(resolve_base_url(spec.base_url))
        except UserError as e:
            if str(e) == NO_KEY_MESSAGE:
                raise UserError(f"{NO_KEY_MESSAGE} (the planner asked for with --planner-models needs one)") from None
            raise
    return spec


def choose_distiller(task: Any, *, offline: bool = False, explicit: bool = False, ledger=None,
                     notify: Callable[[str], None] | None = None) -> tuple[Any, str | None]:
    """(the distiller to use, a one-line notice when it is not the planner the user may expect)."""
    from .extractive import ExtractiveDistiller

    spec = check_planner(task, offline, explicit)
    if not spec.configured:
        return ExtractiveDistiller(), ("planner: no model configured (planner: {model: ...} in the task, or "
                                       "--planner-models) — the extractive distiller writes the plan")
    if offline:
        return ExtractiveDistiller(), f"planner: --offline — the extractive distiller writes the plan instead of the {spec.describe()}"
    from ..llm.client import NO_KEY_MESSAGE, LLMClient

    try:
        client = LLMClient.from_config(spec.client_config(), ledger=ledger)
    except UserError as e:
        if str(e) != NO_KEY_MESSAGE or explicit:
            raise
        return ExtractiveDistiller(), f"planner: {e} — the extractive distiller writes the plan instead of the {spec.describe()}"
    from .llm_distiller import LLMDistiller

    distiller = LLMDistiller(client, spec.model, models=spec.models, judge=spec.judge, mode=spec.mode, rounds=spec.rounds,
                             temperature=spec.temperature, max_tokens=spec.max_tokens, timeout=spec.timeout,
                             json_mode=spec.json_mode, max_hypotheses=spec.max_hypotheses, notify=notify)
    return distiller, None
