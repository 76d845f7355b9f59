"""An LLM policy behind any OpenAI-compatible chat API (``vllm serve``, SGLang, OpenAI, ...).

This is how a user evaluates the released AtomMem-8B::

    # vllm serve Yupeng123/AtomMem-8B --served-model-name AtomMem --port 8000
    policy = OpenAIChatPolicy("http://localhost:8000/v1", "AtomMem")
    trajectories = rollout(lambda: gym.make("AtomMem-HotpotQA-200-v0"), policy, seeds)

Each observation becomes one ``POST {base_url}/chat/completions`` with the observation's system and
user messages (:func:`atommem_env.as_messages`), so the model sees exactly the paper's prompts, and with
``tools`` when the observation offers them (``action_format="tools"``; the server's chat template renders
them, and its tool parser returns the calls: ``vllm serve ... --enable-auto-tool-choice --tool-call-parser
hermes`` for Qwen). Requests of one ``act`` call run concurrently; the server batches them. Only the
standard library is used.

What :class:`~agents.base.Completion` holds (the rest stays ``None``):

- ``text``: always, ``choices[0].message.content`` (``""`` when the server sends ``null``). A
  reasoning parser on the server (``--reasoning-parser``) moves ``<think>`` text out of ``content``;
  the env ignores tags inside ``<think>`` anyway, so either way is fine.
- ``tool_calls``: the server's ``choices[0].message.tool_calls``, each as ``{"id", "name", "arguments"}``
  (arguments decoded from their JSON text where it is an object, else kept as text for the env to report);
  ``None`` when there are none, so that the env reads ``content`` (where a server without a tool parser
  leaves the ``<tool_call>`` blocks, and where a parser leaves blocks it could not read).
- ``logprobs``: with ``logprobs=True`` only, from ``choices[0].logprobs.content[*].logprob``.
- ``response_ids``: when the server reports response token ids, either as ``choices[0].token_ids``
  (vLLM with ``extra_body={"return_token_ids": True}``) or, with ``logprobs=True``, as tokens of the form
  ``"token_id:123"`` (vLLM with ``extra_body={"return_tokens_as_token_ids": True}``).
- ``prompt_ids``: when the server reports them as top-level ``prompt_token_ids`` (vLLM with
  ``extra_body={"return_token_ids": True}``).

These vLLM switches are not sent by default because other servers reject unknown fields.

The API key (a server started with ``vllm serve --api-key``, or a hosted API) comes from the environment:
``OPENAI_API_KEY`` by default, or the variable that ``api_key_env`` names, so it never has to appear on a
command line; it is sent only as the ``Authorization`` header and never shown (:mod:`atommem_env.credentials`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agents.base import Completion
from atommem_env import as_messages
from atommem_env.credentials import DEFAULT_API_KEY_ENV, check_base_url, key_hint, resolve_api_key
from atommem_env.errors import AtomMemError, ConfigError
from atommem_env.http import post_json
from atommem_env.tool_calls import flatten_call

logger = logging.getLogger(__name__)

_TOKEN_ID_PREFIX = "token_id:"  # vLLM's token form under return_tokens_as_token_ids


class ChatServiceError(AtomMemError, ConnectionError):
    """A chat-completions server could not be reached or answered with an error (names the URL)."""


class OpenAIChatPolicy:
    """A policy that asks an OpenAI-compatible ``/chat/completions`` endpoint for every action.

    The policy holds no connection (one per request), so it pickles and travels to worker processes.

    Args:
        base_url: the API root, e.g. ``"http://localhost:8000/v1"``.
        model: the served model name (``--served-model-name`` of ``vllm serve``).
        api_key: sent as ``Authorization: Bearer ...``; never shown in ``repr`` or messages. Leave it out
            to read the key from the environment (``api_key_env``).
        api_key_env: the environment variable holding the key when ``api_key`` is not given (default
            ``OPENAI_API_KEY``; unset means no key, as a local ``vllm serve`` needs; a variable named
            here that is not set is an error).
        temperature: sampling temperature (the paper's RL sampling uses 1.0).
        top_p: nucleus sampling mass (the paper: 0.99).
        max_tokens: response budget in tokens (the paper: 4,096; the env cuts longer responses anyway).
        concurrency: requests in flight at once within one ``act`` call.
        timeout: seconds per request (a long response at 4K tokens can take a while).
        max_retries: extra attempts after a connection error, a timeout, HTTP 429 or 5xx.
        logprobs: request per-token log-probabilities and fill ``Completion.logprobs``.
        extra_body: more fields merged into every request body (e.g. ``{"seed": 0}``, or vLLM's
            ``{"return_token_ids": True}`` / ``{"return_tokens_as_token_ids": True}`` for token ids);
            they override the fields above.
        backoff: first retry delay in seconds, doubled each retry (a ``Retry-After`` header wins, up to
            60 s).

    Raises:
        ConfigError: invalid arguments.
        ChatServiceError: on ``act``, when a request fails for good (names the URL, the status and the
            server's message).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        temperature: float = 1.0,
        top_p: float = 0.99,
        max_tokens: int = 4096,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 3,
        logprobs: bool = False,
        extra_body: dict[str, Any] | None = None,
        *,
        backoff: float = 0.5,
        api_key_env: str = DEFAULT_API_KEY_ENV,
    ) -> None:
        self.base_url = check_base_url(base_url, "OpenAIChatPolicy base_url")
        if not model:
            raise ConfigError("OpenAIChatPolicy model='': pass the served model name (vllm serve --served-model-name).")
        if max_tokens < 1 or concurrency < 1 or timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ConfigError(
                f"OpenAIChatPolicy max_tokens={max_tokens}, concurrency={concurrency}, timeout={timeout}, "
                f"max_retries={max_retries}, backoff={backoff}: need max_tokens, concurrency >= 1, timeout > 0 "
                "and the others >= 0."
            )
        if extra_body is not None and not isinstance(extra_body, dict):
            raise ConfigError(f"OpenAIChatPolicy extra_body is a {type(extra_body).__name__}: pass a dict of request "
                              "fields or None.")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self._api_key = resolve_api_key(api_key, api_key_env, "OpenAIChatPolicy")
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.logprobs = logprobs
        self.extra_body = dict(extra_body or {})
        self.backoff = backoff
        self.name = f"openai:{model}"

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        """One completion per observation, in input order (requests run concurrently).

        Raises:
            ChatServiceError: when any request fails for good; the other requests still finish first.
        """
        if not observations:
            return []
        # A fresh pool per call keeps the policy free of threads, hence picklable.
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(observations))) as pool:
            return list(pool.map(self._complete, observations))

    def request_body(self, observation: dict[str, Any]) -> dict[str, Any]:
        """The JSON body sent for one observation (public so a user can inspect or log it)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": as_messages(observation),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }
        if observation.get("tools"):
            body["tools"] = list(observation["tools"])
        if self.logprobs:
            body["logprobs"] = True
        body.update(self.extra_body)
        return body

    def _complete(self, observation: dict[str, Any]) -> Completion:
        return self._parse(self._post(self.request_body(observation)))

    def _post(self, body: dict[str, Any]) -> bytes:
        tools_hint = (" The request offers tools: vLLM serves them with --enable-auto-tool-choice and a "
                      "--tool-call-parser (hermes for Qwen, llama3_json for Llama 3).") if "tools" in body else ""
        return post_json(
            self.url, body, api_key=self._api_key, timeout=self.timeout, max_retries=self.max_retries,
            backoff=self.backoff, error=ChatServiceError,
            request_hint=f"Check model={self.model!r} (the served name), the API key "
            f"({key_hint(self._api_key, self.api_key_env)}), the sampling fields and extra_body, and that base_url "
            "is the API root (ending in /v1)." + tools_hint,
            server_hint=f"Is the server running (e.g. vllm serve ... --served-model-name {self.model}) and is "
            f"base_url={self.base_url!r} right? Raise timeout={self.timeout} for long responses.",
        )

    def _parse(self, raw: bytes) -> Completion:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            if not isinstance(text, str):
                raise TypeError(f"message.content is {type(text).__name__}, not a string")
            tool_calls = _tool_calls(choice["message"].get("tool_calls"))
            prompt_ids = _ints(data.get("prompt_token_ids"))
            response_ids = _ints(choice.get("token_ids"))
            logprobs = None
            if self.logprobs:
                content = (choice.get("logprobs") or {}).get("content")
                if content is None:
                    raise KeyError("choices[0].logprobs.content (logprobs=True was requested)")
                logprobs = tuple(float(item["logprob"]) for item in content)
                if response_ids is None:
                    response_ids = _ids_from_tokens([item.get("token") for item in content])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ChatServiceError(
                f"POST {self.url} answered something that is not an OpenAI chat completion "
                f"({type(exc).__name__}: {exc}); first bytes: {raw[:200]!r}. Does the server support "
                f"{'logprobs and ' if self.logprobs else ''}the chat API?"
            ) from exc
        return Completion(text, prompt_ids, response_ids, logprobs, tool_calls)

    def __repr__(self) -> str:
        # Never show the api_key.
        return (
            f"OpenAIChatPolicy(base_url={self.base_url!r}, model={self.model!r}, temperature={self.temperature}, "
            f"top_p={self.top_p}, max_tokens={self.max_tokens}, logprobs={self.logprobs})"
        )


def _tool_calls(calls: Any) -> tuple[dict[str, Any], ...] | None:
    """The server's ``message.tool_calls`` flattened (:func:`~atommem_env.tool_calls.flatten_call`); None if none."""
    if not calls:
        return None
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        raise TypeError(f"message.tool_calls is {calls!r:.80}, not a list of objects")
    return tuple(flatten_call(c) for c in calls)


def _ints(values: Any) -> tuple[int, ...] | None:
    return tuple(int(v) for v in values) if values is not None else None


def _ids_from_tokens(tokens: list[Any]) -> tuple[int, ...] | None:
    """Token ids from vLLM's ``"token_id:123"`` tokens; ``None`` unless every token has that form."""
    if not all(isinstance(t, str) and t.startswith(_TOKEN_ID_PREFIX) for t in tokens):
        return None
    try:
        return tuple(int(t[len(_TOKEN_ID_PREFIX) :]) for t in tokens)
    except ValueError:
        return None
