"""One POST-JSON-with-retries client for OpenAI-compatible servers (embeddings and chat).

Standard library only, so talking to ``vllm serve`` needs no extra package. Connection errors,
timeouts, 429 and 5xx are retried with doubling backoff (a ``Retry-After`` header wins, capped);
any other 4xx means the request itself is wrong and fails at once.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

logger = logging.getLogger(__name__)

MAX_RETRY_DELAY = 60.0  # seconds; a longer Retry-After is capped so one call cannot hang for hours


def post_json(
    url: str,
    body: dict[str, Any],
    *,
    api_key: str | None,
    timeout: float,
    max_retries: int,
    backoff: float,
    error: type[Exception],
    request_hint: str,
    server_hint: str,
) -> bytes:
    """POST ``body`` as JSON to ``url`` and return the raw response bytes.

    Args:
        url: the endpoint, e.g. ``http://localhost:8000/v1/chat/completions``.
        body: the JSON request.
        api_key: sent as a Bearer token when given.
        timeout: seconds per attempt.
        max_retries: retries after the first attempt.
        backoff: first retry delay in seconds; it doubles each retry.
        error: exception class raised on failure (its message names the URL and the reason).
        request_hint: what to check when the server rejects the request (a 4xx).
        server_hint: what to check when the server cannot be reached or keeps failing.
    """
    data = json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    reason = ""
    for attempt in range(max_retries + 1):
        retry_after: float | None = None
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {server_message(exc.read())}".strip()
            if exc.code != 429 and exc.code < 500:  # the request itself is wrong: retrying cannot help
                raise error(f"POST {url} failed with {reason}. {request_hint}") from exc
            retry_after = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, DNS, timeouts
            reason = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < max_retries:
            delay = backoff * 2**attempt
            if retry_after is not None:
                delay = min(max(delay, retry_after), MAX_RETRY_DELAY)
            logger.warning("POST %s failed (%s); retry %d/%d in %.2fs", url, reason, attempt + 1, max_retries, delay)
            time.sleep(delay)
    raise error(f"POST {url} failed after {max_retries + 1} attempt(s): {reason}. {server_hint}")


def server_message(raw: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else its first 300 characters."""
    text = raw[:2000].decode("utf-8", "replace")
    try:
        error = json.loads(text).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message)[:300]
    except (ValueError, AttributeError):
        pass  # not JSON (a proxy's HTML page, a truncated body): show it raw
    return text[:300]


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the HTTP-date form is ignored)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
