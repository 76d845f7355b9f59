"""A fake OpenAI-compatible chat server, in-process (no network), shared by the openai policy's tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON payload


def chat_reply(content: str | None, **extra: Any) -> Reply:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    choice.update(extra.pop("choice", {}))
    return 200, {}, {"id": "x", "object": "chat.completion", "choices": [choice], **extra}


def agent_reply(body: dict[str, Any]) -> Reply:
    """A valid AtomMem action: store something while reading, answer when asked the problem."""
    user = body["messages"][-1]["content"]
    if "problem:" in user:
        return chat_reply("<final_answer>\\boxed{Marrowfield}</final_answer>")
    return chat_reply("<add_memory>a fact from this chunk</add_memory>")


class FakeServer:
    """``/v1/chat/completions`` answered by ``respond(body, call_number)``; records every request."""

    def __init__(self, respond: Callable[[dict[str, Any], int], Reply]) -> None:
        self.respond = respond
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append((self.path, dict(self.headers), body))
                    number = len(server.requests)
                if self.path != "/v1/chat/completions":
                    status, headers, payload = 404, {}, {"error": {"message": f"no route {self.path}"}}
                else:
                    status, headers, payload = server.respond(body, number)
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)  # fast shutdown

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
