"""Policies for AtomMem environments: the batched Policy protocol and scripted baselines."""

from agents.base import Completion, Policy
from agents.openai_policy import ChatServiceError, OpenAIChatPolicy
from agents.scripted import HeuristicMemoryPolicy, NoMemoryPolicy, RandomPolicy

POLICIES = {
    "heuristic": HeuristicMemoryPolicy,
    "no-memory": NoMemoryPolicy,
    "random": RandomPolicy,
}

__all__ = [
    "ChatServiceError", "Completion", "HeuristicMemoryPolicy", "NoMemoryPolicy", "OpenAIChatPolicy", "POLICIES",
    "Policy", "RandomPolicy",
]
