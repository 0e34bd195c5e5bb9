"""LLM access: an OpenAI-compatible client with usage and cost (`client`; prices in `research_agent.prices`) and
multi-model fusion (`fusion`). Importing this package does not import `openai` (that happens on the
first call), so the CLI stays fast."""

from .client import (AuthError, BudgetError, Completion, LLMClient, LLMError, LLMTimeout, ModelError, ProviderError,
                     Usage)
from .fusion import FusionError, FusionResult, JudgeError, MemberAnswer, fuse, fuse_sync

__all__ = [
    "AuthError", "BudgetError", "Completion", "FusionError", "FusionResult", "JudgeError", "LLMClient", "LLMError",
    "LLMTimeout", "MemberAnswer", "ModelError", "ProviderError", "Usage", "fuse", "fuse_sync",
]
