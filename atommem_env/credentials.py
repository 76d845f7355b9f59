"""API keys: read from the environment, sent only as a header, never printed or recorded.

The clients of OpenAI-compatible servers (:class:`~agents.openai_policy.OpenAIChatPolicy`,
:class:`~atommem_env.embedders.OpenAIEmbedder`) take their key from ``api_key`` or, by default, from the
environment variable ``OPENAI_API_KEY``; ``api_key_env="MY_KEY"`` names another variable, so a command
line carries the variable's name, never the key (``--policy-kwargs '{"api_key_env": "MY_KEY"}'``). The
key goes only into the ``Authorization`` header of each request.

What the project records or prints (``config.json``, ``fidelity.md``, error messages) goes through
:func:`redact`: the value of every option named like a secret (:data:`SECRET_NAMES`, e.g. ``api_key``)
becomes ``"<redacted>"``, also inside JSON text such as ``--policy-kwargs``, and the ``user:password@``
of a URL becomes ``<redacted>@``. A base URL with credentials in it is refused (:func:`check_base_url`),
so the URLs recorded with a run (``env_options``) hold none.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from atommem_env.errors import ConfigError

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"  # the variable OpenAI's own clients read
REDACTED = "<redacted>"
#: Option names whose values are secrets (compared in lower case). ``api_key_env`` is not one: it names
#: a variable. Token *counts* (``max_tokens``) are not either, hence whole names, not substrings.
SECRET_NAMES = frozenset({
    "api_key", "apikey", "api-key", "token", "access_token", "auth_token", "hf_token", "password", "secret",
    "authorization", "headers", "extra_headers", "default_headers",
})
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
# In text that is not valid JSON (a typo in --policy-kwargs): "name": "value" for a secret name.
_QUOTED_SECRET = re.compile(r'("(?:' + "|".join(map(re.escape, sorted(SECRET_NAMES))) + r')"\s*:\s*)"(?:[^"\\]|\\.)*"',
                            re.IGNORECASE)


def resolve_api_key(api_key: str | None, api_key_env: str, owner: str) -> str | None:
    """The key to send: ``api_key`` when given, else the value of the environment variable ``api_key_env``.

    Args:
        api_key: the key itself (from Python code; on a command line, name a variable instead).
        api_key_env: the variable to read when ``api_key`` is not given.
        owner: the class, for messages.

    Returns:
        The key, or ``None`` (no ``Authorization`` header) when neither is set and ``api_key_env`` is the
        default ``OPENAI_API_KEY`` (a local ``vllm serve`` needs no key).

    Raises:
        ConfigError: ``api_key_env`` is not a variable name, or names another variable that is not set.
    """
    if api_key:
        return api_key
    if not isinstance(api_key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        raise ConfigError(f"{owner} api_key_env must name an environment variable, e.g. 'OPENAI_API_KEY' "
                          "(it holds the variable's name; the key stays in the environment).")
    key = os.environ.get(api_key_env)
    if not key and api_key_env != DEFAULT_API_KEY_ENV:
        raise ConfigError(f"{owner} api_key_env={api_key_env!r}, but that environment variable is not set; "
                          f"`export {api_key_env}=...` with the key, or leave api_key_env out (then "
                          f"{DEFAULT_API_KEY_ENV} is used when set).")
    return key or None


def key_hint(key: str | None, api_key_env: str) -> str:
    """For a rejected request's message: whether a key was sent (never the key)."""
    return "one was sent" if key else f"none was sent: ${api_key_env} is not set"


def check_base_url(base_url: str, name: str) -> str:
    """``base_url`` without its trailing slash, once it is a plain http(s) API root.

    Args:
        base_url: the URL to check.
        name: what it was given as, for messages (``"OpenAIEmbedder base_url"``, ``"--embedder-url"``).

    Raises:
        ConfigError: not http(s), or it carries credentials (``user:password@``) or a ``?query`` /
            ``#fragment``; the message shows the URL without either.
    """
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{name} {redact(base_url)!r} is not an http(s) URL; use e.g. 'http://localhost:8000/v1'.")
    parts = urlsplit(base_url)
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"  # never the credentials or query
    if "@" in parts.netloc:
        raise ConfigError(f"{name} holds credentials (user:password@); pass {shown!r} and the key "
                          f"through the environment ({DEFAULT_API_KEY_ENV}, or api_key_env naming another variable).")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} has a ?query or #fragment; pass the API root, {shown!r} (a key goes "
                          f"through {DEFAULT_API_KEY_ENV} or api_key_env).")
    return base_url.rstrip("/")


def redact(value: Any) -> Any:
    """``value`` with every secret replaced by ``"<redacted>"``, fit to record or print.

    Mappings: the values of :data:`SECRET_NAMES` keys (recursively); lists and tuples item by item;
    strings: the credentials of URLs in them, and, when the string is a JSON object or list (such as
    ``--policy-kwargs``), the secrets inside it (the text is re-encoded only if something was
    redacted; text that only looks like JSON has each quoted secret value replaced). Anything else is
    returned as it is.
    """
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret(k, v) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _redact_text(value)
    return value


def _is_secret(name: Any, value: Any) -> bool:
    return isinstance(name, str) and name.lower() in SECRET_NAMES and value not in (None, "", {}, [])


def _redact_text(text: str) -> str:
    if text.lstrip().startswith(("{", "[")):
        try:
            parsed = json.loads(text)
        except ValueError:  # e.g. a typo: still no secret value gets through
            text = _QUOTED_SECRET.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
        else:
            cleaned = redact(parsed)
            return text if cleaned == parsed else json.dumps(cleaned)
    return _URL_CREDENTIALS.sub(REDACTED + "@", text)
