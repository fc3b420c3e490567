"""Model calls through litellm, recorded in the trace store; an offline demo model.

litellm is imported lazily (it takes seconds) and told to use its bundled price list.
"""

from workbench.llm.client import LLMReply
from workbench.llm.config import DEMO_MODEL, resolve_model

__all__ = ["DEMO_MODEL", "LLMReply", "resolve_model"]
