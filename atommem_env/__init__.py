"""atommem: Gymnasium environments for learnable agent memory with atomic CRUD operations.

Importing this package registers every ``AtomMem-*`` id with gymnasium::

    import gymnasium as gym
    import atommem_env

    env = gym.make("AtomMem-Synthetic-v0")
    baseline = gym.make("AtomMem-MemAgent-Synthetic-v0")  # the MemAgent protocol, same episodes
"""

from atommem_env.actions import Op, ParsedAction, parse_action, render_op, render_ops
from atommem_env.config import EnvConfig, MemAgentConfig
from atommem_env.datasets.base import Episode, EpisodeSource, QASample
from atommem_env.embedders import Embedder, HashingEmbedder, make_embedder
from atommem_env.env import MemoryQAEnv
from atommem_env.errors import AtomMemError, ConfigError, DataError, DependencyError, MemoryOpError
from atommem_env.info import StepInfo
from atommem_env.memagent import MemAgentEnv
from atommem_env.memory import MemoryEntry, MemoryStore
from atommem_env.observation import Phase, Progress
from atommem_env.prompts import to_messages
from atommem_env.registration import (
    documents_per_episode,
    needs_data,
    protocol_rules,
    register_all,
    registered_ids,
)
from atommem_env.scoring import exact_match, f1_score, normalize_answer, substring_match
from atommem_env.tokenization import RegexTokenizer, Tokenizer, make_tokenizer

register_all()


def as_messages(observation: dict) -> list[dict[str, str]]:
    """Chat messages (system, if any, + user) of an observation, ready for a chat template or an API."""
    return to_messages(observation["system"], observation["user"])


__all__ = [
    "AtomMemError", "ConfigError", "DataError", "DependencyError", "Embedder", "EnvConfig", "Episode",
    "EpisodeSource", "HashingEmbedder", "MemAgentConfig", "MemAgentEnv", "MemoryEntry", "MemoryOpError",
    "MemoryQAEnv", "MemoryStore", "Op", "ParsedAction", "Phase", "Progress", "QASample", "RegexTokenizer",
    "StepInfo", "Tokenizer", "as_messages", "documents_per_episode", "exact_match", "f1_score", "make_embedder",
    "make_tokenizer", "needs_data", "normalize_answer", "parse_action", "protocol_rules", "register_all",
    "registered_ids", "render_op",
    "render_ops", "substring_match",
]
