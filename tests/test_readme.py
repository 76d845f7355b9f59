"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_readme_has_python_examples():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index):
    namespace: dict = {}
    exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), namespace)
    if "AlwaysStore" in namespace:  # the custom-policy example must drive a whole episode
        import gymnasium as gym

        from agents.training.rollout import rollout

        (traj,) = rollout(lambda: gym.make("AtomMem-Synthetic-v0"), namespace["AlwaysStore"](), [0])
        assert traj.terminated and traj.turns


def test_worked_example_feedback_line_is_what_the_env_says():
    import gymnasium as gym

    env = gym.make("AtomMem-Synthetic-v0")
    env.reset(seed=0)
    env.step("<add_memory>a</add_memory><add_memory>b</add_memory><add_memory>c</add_memory>")
    obs, *_ = env.step("<delete_memory>Memory 7</delete_memory>")
    line = "- <delete_memory>: Memory 7 is not in the current list (it shows Memory 1 to Memory 3)."
    assert obs["feedback"] == line and line in README
