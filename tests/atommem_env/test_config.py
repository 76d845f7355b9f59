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
