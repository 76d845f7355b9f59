"""Policies of your own by spec: ``path/to/file.py:NAME`` and ``module:NAME`` in make_policy and rollout."""

import textwrap

import gymnasium as gym
import pytest

import atommem_env  # noqa: F401 - registers the ids
from agents import make_policy
from agents.registry import parse_spec
from agents.training.rollout import rollout
from atommem_env.errors import ConfigError

POLICIES = '''
from agents import Completion

class Echo:
    """Answers every observation with one Create of its first characters."""

    def __init__(self, width=40, name="echo"):
        self.width, self.name = width, name

    def act(self, observations):
        return [Completion(f"<add_memory>{o['chunk'][:self.width] or 'x'}</add_memory>"
                           "<final_answer>\\\\boxed{no}</final_answer>") for o in observations]

def make_echo(width=10):
    return Echo(width, name=f"echo-{width}")

ready = Echo(5, name="ready-made")

class Namespace:
    make = staticmethod(make_echo)

not_a_policy = 3

def make_nothing():
    return "a string"
'''


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "my_policies.py"
    path.write_text(textwrap.dedent(POLICIES), encoding="utf-8")
    return path


def test_a_class_in_a_file_is_built_with_its_options(policy_file):
    policy = make_policy(f"{policy_file}:Echo", width=3)
    assert type(policy).__name__ == "Echo" and policy.width == 3 and policy.name == "echo"


def test_a_factory_an_instance_and_a_dotted_name_are_accepted(policy_file):
    assert make_policy(f"{policy_file}:make_echo", width=7).name == "echo-7"
    assert make_policy(f"{policy_file}:ready").name == "ready-made"
    assert make_policy(f"{policy_file}:Namespace.make").name == "echo-10"


def test_a_file_is_loaded_once(policy_file):
    first, second = make_policy(f"{policy_file}:Echo"), make_policy(f"{policy_file}:Echo")
    assert type(first) is type(second)


def test_a_relative_path_is_read_from_the_working_folder(policy_file, monkeypatch):
    monkeypatch.chdir(policy_file.parent)
    assert parse_spec("my_policies.py:Echo") == ("file", ("my_policies.py", "Echo"))
    assert make_policy("./my_policies.py:Echo").name == "echo"


def test_an_importable_module_is_named_by_its_dotted_path(policy_file, monkeypatch):
    package = policy_file.parent / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    policy_file.rename(package / "policies.py")
    monkeypatch.syspath_prepend(str(policy_file.parent))
    assert parse_spec("mypkg.policies:make_echo") == ("module", ("mypkg.policies", "make_echo"))
    assert make_policy("mypkg.policies:make_echo", width=2).name == "echo-2"


@pytest.mark.parametrize("name, kwargs, message", [
    ("Missing", {}, "has no 'Missing'; it defines Completion, Echo, Namespace, make_echo, make_nothing, "
                    "not_a_policy, ready"),
    ("Echo", {"temperature": 0}, "unexpected keyword argument 'temperature'.*width, name"),
    ("ready", {"width": 2}, "is an instance, built already"),
    ("not_a_policy", {}, "'int', which is not a policy"),
    ("make_nothing", {}, "'str', which is not a policy"),
])
def test_a_name_that_builds_no_policy_says_why(policy_file, name, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_policy(f"{policy_file}:{name}", **kwargs)


@pytest.mark.parametrize("spec, message", [
    ("missing_file.py:Echo", "there is no file 'missing_file.py'"),
    ("no_such_module_anywhere:Echo", r"unknown: no module .*\./no_such_module_anywhere\.py:Echo"),
    ("agents.no_such_module:Echo", "no module 'agents.no_such_module' can be imported"),
    ("my_policies.py:", "unknown"),
    ("my_policies.py:not-a-name", "unknown"),
])
def test_bad_custom_specs_are_refused(spec, message, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        make_policy(spec)


def test_built_in_names_and_prefixes_come_first():
    assert parse_spec("random") == ("random", ())  # not the standard library's random module
    with pytest.raises(ConfigError, match="openai:MODEL@URL"):
        parse_spec("openai:OpenAI")  # the model prefix, not the openai package


def test_rollout_takes_a_spec(policy_file):
    (traj,) = rollout(lambda: gym.make("AtomMem-Synthetic-v0"), f"{policy_file}:make_echo", [0])
    assert traj.terminated and traj.turns[0].response.startswith("<add_memory>")
