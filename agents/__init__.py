"""Policies for AtomMem environments: the batched Policy protocol, baselines and LLM policies.

Model policies (:class:`~agents.hf_policy.TransformersPolicy`, :class:`~agents.vllm_policy.VLLMPolicy`)
live in their own modules and are not imported here, so ``import agents`` needs no torch or vLLM.
"""

from agents.base import Completion, Policy
from agents.openai_policy import ChatServiceError, OpenAIChatPolicy
from agents.registry import BASELINES, make_policy
from agents.scripted import HeuristicMemoryPolicy, NoMemoryPolicy, RandomPolicy, ScratchpadHeuristicPolicy

__all__ = [
    "BASELINES", "ChatServiceError", "Completion", "HeuristicMemoryPolicy", "NoMemoryPolicy", "OpenAIChatPolicy",
    "Policy", "RandomPolicy", "ScratchpadHeuristicPolicy", "make_policy",
]
