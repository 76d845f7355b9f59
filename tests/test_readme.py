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


REPRODUCING = README.split("## Reproducing the paper")[1].split("\n## ")[0]


def test_reproducing_the_paper_names_the_loaders_hub_sources() -> None:
    from atommem_env.datasets.sources import BENCHMARKS

    for spec in BENCHMARKS.values():
        for split, hub in spec.hub.items():
            if hub.data_files:  # hf://datasets/<owner>/<name>/<file>
                owner, name, file = hub.data_files.removeprefix("hf://datasets/").split("/")
                assert f"`{owner}/{name}`" in REPRODUCING and f"`{file}`" in REPRODUCING, (spec.name, split)
            else:
                assert f"`{hub.path}` (config `{hub.name}`" in REPRODUCING and f"`{hub.split}`" in REPRODUCING


def test_the_released_model_has_one_id_and_one_served_name_everywhere() -> None:
    root = Path(__file__).resolve().parents[1]
    texts = [README] + [p.read_text(encoding="utf-8") for p in sorted((root / "docs").glob("*.md"))] + [
        p.read_text(encoding="utf-8") for folder in ("atommem_env", "agents", "experiments", "tests")
        for p in sorted((root / folder).rglob("*.py")) if p != Path(__file__).resolve()]
    text = "\n".join(texts)
    assert "atommem-8b" not in text  # one spelling of the model: AtomMem-8B
    served = set(re.findall(r"openai:([\w.-]*atommem[\w.-]*)@", text, flags=re.IGNORECASE))
    served |= set(re.findall(r"OpenAIChatPolicy\([^,()]+, \"([^\"]*atommem[^\"]*)\"", text, flags=re.IGNORECASE))
    served |= set(re.findall(r"AtomMem-8B\S* --served-model-name (\S+)", text))
    assert served == {"AtomMem"}
    assert "vllm serve Yupeng123/AtomMem-8B --served-model-name AtomMem" in REPRODUCING
    assert "[`Yupeng123/AtomMem-8B`](https://huggingface.co/Yupeng123/AtomMem-8B)" in REPRODUCING


def test_ci_runs_the_readmes_full_suite_installs_and_test_command() -> None:
    """``.ci/run`` installs what the README's full CPU suite needs and runs the README's test command."""
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    ci_installs = {line.replace("python -m ", "").replace("--quiet ", "").strip()
                   for line in ci.splitlines() if "pip install" in line}
    block = README.split("The **full CPU suite**")[1].split("```bash\n")[1].split("```")[0]
    installs = [part.strip() for part in block.splitlines()[0].split("&&")]
    assert installs and all(part in ci_installs for part in installs), (installs, ci_installs)
    test_command = "python -m pytest -q"
    assert block.splitlines()[1].startswith(test_command) and f"\n{test_command} " in ci
    assert f'pip install -e ".[test]" && {test_command}' in README  # the Quickstart's core tier: the same command
