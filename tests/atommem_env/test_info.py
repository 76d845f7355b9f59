"""The info TypedDicts name exactly the keys the envs put in info, in both protocols."""

import json

import pytest

from atommem_env.info import EpisodeInfo, StepInfo, TurnInfo
from atommem_env.memagent import MemAgentEnv
from atommem_env.observation import Phase

FINAL_KEYS = {"answers", "golds", "aliases", "skipped", "em", "f1", "substring_em", "reward"}


def play(env, action):
    """Every info of one episode (reset included), stepping with ``action(obs)``."""
    obs, info = env.reset(seed=0)
    infos = [info]
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(action(obs))
        infos.append(info)
        done = terminated or truncated
    return infos


def answer_or_write(obs):
    if obs["phase"] == Phase.READING:
        return "<add_memory>note</add_memory>"
    return "<final_answer>\\boxed{x}</final_answer>"


def test_the_typed_dicts_nest():
    assert EpisodeInfo.__required_keys__ < TurnInfo.__required_keys__ == StepInfo.__required_keys__
    assert FINAL_KEYS | {"memory_truncated"} == StepInfo.__optional_keys__


@pytest.mark.parametrize("protocol", ["atommem", "memagent"])
def test_every_info_has_the_turn_keys_and_the_last_adds_the_scores(protocol, make_env, toy_source):
    env = make_env() if protocol == "atommem" else MemAgentEnv(toy_source, chunk_tokens=60, chunk_overlap=5)
    extra = {"memory_truncated"} if protocol == "memagent" else set()
    infos = play(env, answer_or_write)
    for info in infos[:-1]:
        assert set(info) == TurnInfo.__required_keys__ | extra
    assert set(infos[-1]) == TurnInfo.__required_keys__ | extra | FINAL_KEYS
    assert json.loads(json.dumps(infos)) == infos


def test_op_and_error_records_have_their_keys(make_env):
    env = make_env()
    env.reset(seed=0)
    _, _, _, _, info = env.step("<add_memory>note</add_memory><final_answer>x</final_answer>")
    assert {tuple(op) for op in info["ops"]} == {("op", "rank", "ok", "id", "error")}
    assert {tuple(sorted(e)) for e in info["errors"]} == {("code", "message", "tag")}
