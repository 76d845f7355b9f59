"""The environment rewards memory: storing the right facts wins, keeping nothing loses (issue bar)."""

import gymnasium as gym
import pytest

from agents import NoMemoryPolicy
from atommem_env.actions import ADD_MEMORY, FINAL_ANSWER, UPDATE_QUERY, Op, render_ops
from atommem_env.datasets import evidence_facts
from atommem_env.observation import Phase, Progress


class Oracle:
    """Stores each evidence sentence when it appears in a chunk; answers only from retrieved memory.

    It knows which sentences matter (from the episode), but it must still store them, retrieve them
    with a query, and find the gold answer in the shown memories: a broken store, retrieval or rank
    list makes it fail.
    """

    def __init__(self, env):
        self.env = env.unwrapped
        self.stored: set[str] = set()

    def act(self, obs) -> str:
        facts = evidence_facts(self.env._episode)
        if obs["phase"] == Phase.READING:
            new = [s for q in facts for s in q if s in obs["chunk"] and s not in self.stored]
            self.stored.update(new)
            return render_ops([Op(ADD_MEMORY, s) for s in new] or [Op(ADD_MEMORY, "Section read.")])
        question = int(obs["progress"][Progress.QUESTION])
        query = " ".join(facts[question])
        if obs["query"] != query:
            return render_ops([Op(UPDATE_QUERY, query)])
        gold = self.env._episode.answers[question]
        found = any(gold in memory for memory in obs["memories"])
        return render_ops([Op(FINAL_ANSWER, gold if found else "don't know")])


def play(env, agent, seed):
    obs, info = env.reset(seed=seed)
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs))
        if terminated or truncated:
            return reward, info


@pytest.mark.parametrize("options", [{}, {"questions_per_episode": "paper", "hops": 3, "num_documents": 200}])
def test_oracle_that_stores_the_evidence_reaches_reward_one(options):
    env = gym.make("AtomMem-Synthetic-v0", **options)
    for seed in range(8):
        reward, info = play(env, Oracle(env), seed)
        assert reward == 1.0, info["answers"]
        assert info["num_chunks"] > 1


def test_agent_without_memory_scores_zero():
    env = gym.make("AtomMem-Synthetic-v0", questions_per_episode="paper")
    policy = NoMemoryPolicy()
    total = 0
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        while True:
            obs, reward, terminated, truncated, info = env.step(policy.act([obs])[0].text)
            if terminated or truncated:
                break
        assert info["em"] == [0.0] * info["num_questions"]
        assert info["num_chunks"] > 1  # so the evidence was read in earlier chunks
        total += info["num_questions"]
    assert total >= 40
