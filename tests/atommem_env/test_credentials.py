"""API keys come from the environment, reach only the Authorization header, and are redacted everywhere else."""

from __future__ import annotations

import json
import pickle
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atommem_env import ConfigError
from atommem_env.credentials import REDACTED, SECRET_NAMES, check_base_url, redact, resolve_api_key
from atommem_env.embedders import OpenAIEmbedder, make_embedder

KEY = "sk-test-5f2a9c0e1b7d"


def test_the_key_comes_from_the_argument_then_the_named_variable(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    monkeypatch.setenv("MY_KEY", KEY)
    assert resolve_api_key("sk-given", "MY_KEY", "X") == "sk-given"
    assert resolve_api_key(None, "MY_KEY", "X") == KEY
    assert resolve_api_key(None, "OPENAI_API_KEY", "X") == "sk-default"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert resolve_api_key(None, "OPENAI_API_KEY", "X") is None  # a local vllm serve needs no key


def test_a_named_variable_that_is_not_set_is_an_error_naming_it(monkeypatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="api_key_env='MY_KEY'.*not set"):
        resolve_api_key(None, "MY_KEY", "OpenAIChatPolicy")
    with pytest.raises(ConfigError, match="must name an environment variable"):
        resolve_api_key(None, "sk-not-a-variable-name!", "OpenAIChatPolicy")


@pytest.mark.parametrize("url, problem", [
    ("localhost:8000/v1", "not an http"),
    ("http://user:hunter2@localhost:8000/v1", "holds credentials"),
    ("https://hunter2@api.example.com/v1", "holds credentials"),
    ("http://localhost:8000/v1?key=hunter2", "query"),
])
def test_base_urls_with_credentials_are_refused_without_showing_them(url, problem) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        check_base_url(url, "OpenAIEmbedder base_url")
    assert "hunter2" not in str(caught.value)
    assert check_base_url("http://localhost:8000/v1/", "X") == "http://localhost:8000/v1"


def test_redact_hides_secret_options_json_text_and_url_credentials() -> None:
    config = {"api_key": KEY, "api_key_env": "MY_KEY", "max_tokens": 64, "nested": [{"Token": KEY}],
              "policy_kwargs": json.dumps({"api_key": KEY, "temperature": 0}),
              "typo": '{"api_key": "' + KEY + '" "temperature": 0}', "url": f"openai:http://u:{KEY}@h:1/v1#m",
              "empty_key": None}
    cleaned = redact(config)
    assert KEY not in json.dumps(cleaned)
    assert cleaned["api_key"] == REDACTED and cleaned["nested"] == [{"Token": REDACTED}]
    assert cleaned["api_key_env"] == "MY_KEY" and cleaned["max_tokens"] == 64 and cleaned["empty_key"] is None
    assert json.loads(cleaned["policy_kwargs"]) == {"api_key": REDACTED, "temperature": 0}
    assert cleaned["url"] == "openai:http://<redacted>@h:1/v1#m"
    text = '{"top_k": 3}'
    assert redact(text) is text  # nothing secret: the text is kept as written (resume compares it)


@given(name=st.sampled_from(sorted(SECRET_NAMES)),
       secret=st.text(alphabet=string.ascii_letters + string.digits + "-_.:/+=", min_size=8),
       depth=st.integers(0, 3), as_text=st.booleans())
def test_no_secret_value_survives_redaction(name, secret, depth, as_text) -> None:
    value: object = {name.upper() if depth % 2 else name: secret, "other": 1}
    for _ in range(depth):
        value = {"inner": [value]}
    cleaned = redact(json.dumps(value) if as_text else value)
    assert secret not in (cleaned if isinstance(cleaned, str) else json.dumps(cleaned))


def test_the_embedder_reads_its_key_from_the_environment_and_never_shows_it(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    embedder = make_embedder("openai:http://localhost:8001/v1#Qwen/Qwen3-Embedding-0.6B")
    assert isinstance(embedder, OpenAIEmbedder)
    assert KEY not in repr(embedder)
    assert pickle.loads(pickle.dumps(embedder))._api_key == KEY  # a worker process can still authenticate
    with pytest.raises(ConfigError) as caught:
        make_embedder(f"openai:http://u:{KEY}@localhost:8001/v1")  # no #model: unknown, shown redacted
    assert KEY not in str(caught.value)
