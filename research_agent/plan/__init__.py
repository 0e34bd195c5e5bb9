"""The plan file: parse, validate, edit surgically, render back byte for byte, show as a table."""

from .model import DIRECTIONS, PLAN_STATUSES, STATUSES, Hypothesis, Plan, new_plan, validate
from .parse import load_plan, parse_plan
from .render import render_plan, save_plan
from .show import plan_table

__all__ = [
    "DIRECTIONS",
    "PLAN_STATUSES",
    "STATUSES",
    "Hypothesis",
    "Plan",
    "load_plan",
    "new_plan",
    "parse_plan",
    "plan_table",
    "render_plan",
    "save_plan",
    "validate",
]
