"""research-agent: read first, then optimize — plan-driven, statistically gated code optimization."""

__version__ = "0.1.0"
