import pytest

from atommem_env.config import EnvConfig
from atommem_env.errors import ConfigError


def test_defaults_are_the_papers():
    cfg = EnvConfig()
    assert (cfg.chunk_tokens, cfg.chunk_overlap, cfg.top_k, cfg.max_reads) == (4000, 100, 6, 3)
    assert (cfg.scratchpad_tokens, cfg.memory_list_tokens, cfg.response_tokens) == (2048, 4096, 4096)


def test_unknown_option_suggests_the_closest():
    with pytest.raises(ConfigError, match="Did you mean 'top_k'"):
        EnvConfig.from_kwargs(topk=3)


@pytest.mark.parametrize(
    "kwargs",
    [{"chunk_tokens": 0}, {"chunk_overlap": 4000}, {"top_k": -1}, {"advance": "sometimes"},
     {"max_turns": 0}, {"capacity": -2}],
)
def test_bad_values_are_rejected_with_the_name(kwargs):
    (name,) = kwargs
    with pytest.raises(ConfigError, match=name):
        EnvConfig(**kwargs)


def test_turn_budget_scales_with_chunks_and_questions():
    cfg = EnvConfig()
    assert cfg.turn_budget(8, 1) >= 41  # the reference's budget for ~8 chunks
    assert cfg.turn_budget(28, 10) >= 2 * 28 + 4 * 10  # a re-read per chunk and 3 reads per question
    assert EnvConfig(max_turns=5).turn_budget(28, 10) == 5


def _wrong_typed_values() -> list[tuple[type, str, object]]:
    """For every bool, int and enum option of both configs, values of the wrong type."""
    from dataclasses import fields
    from typing import get_type_hints

    from atommem_env.config import MemAgentConfig

    wrong = {
        bool: ["no", "False", 0, 1, None, 1.0],
        int: ["3", 2.5, True, None],
        int | None: ["3", 2.5, True],
        str: [1, True, None, 2.0],
    }
    cases = []
    for config in (EnvConfig, MemAgentConfig):
        hints = get_type_hints(config)
        for f in fields(config):
            for value in wrong.get(hints[f.name], []):
                cases.append((config, f.name, value))
    return cases


WRONG = _wrong_typed_values()


@pytest.mark.parametrize("config, name, value", WRONG, ids=[f"{c.__name__}.{n}={v!r}" for c, n, v in WRONG])
def test_every_option_rejects_a_value_of_the_wrong_type(config, name, value):
    """show_retrieval="no" once meant True (a truthy string): every option now names the value and the fix."""
    with pytest.raises(ConfigError, match=f"{name}={value!r}"):
        config(**{name: value})


def test_the_wrong_type_cases_cover_every_flag():
    covered = {name for _, name, _ in WRONG}
    assert {"show_scratchpad", "show_retrieval", "enable_update", "enable_delete", "freeze_scratchpad",
            "store_everything", "capacity", "max_turns", "top_k", "advance", "prompt_style",
            "memory_tokens", "memagent_prompt"} <= covered
