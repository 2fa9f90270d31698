"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for the runner's tests
(standard library only): it answers from a table, records every request, and can fail,
stall or rate-limit chosen questions on chosen attempts."""

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    """`replies`: prompt text -> reply. `faults`: prompt text -> actions for its first
    attempts, each "500", "429", "401" or "stall" (sleep `stall` seconds, then answer).
    `delay`: seconds before every answer."""

    def __init__(self, replies: dict, faults: dict | None = None, stall: float = 3.0,
                 delay: float = 0.0):
        self.replies, self.faults = replies, faults or {}
        self.stall, self.delay = stall, delay
        self.requests: list[dict] = []  # path, authorization, text, images, model, max_tokens
        self.attempts: Counter = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                content = body["messages"][0]["content"]
                text = "".join(p["text"] for p in content if p["type"] == "text")
                images = [p["image_url"]["url"] for p in content if p["type"] == "image_url"]
                with server.lock:
                    attempt = server.attempts[text]
                    server.attempts[text] += 1
                    server.requests.append({
                        "path": self.path, "authorization": self.headers.get("Authorization"),
                        "text": text, "images": images, "model": body["model"],
                        "max_tokens": body.get("max_tokens")})
                actions = server.faults.get(text, [])
                action = actions[attempt] if attempt < len(actions) else None
                if action == "500":
                    return self._send(500, {"error": {"message": "planted failure"}})
                if action == "401":
                    return self._send(401, {"error": {"message": "Incorrect API key"}})
                if action == "429":
                    return self._send(429, {"error": {"message": "slow down"}},
                                      [("Retry-After", "0")])
                if action == "stall":
                    time.sleep(server.stall)
                time.sleep(server.delay)
                reply = server.replies.get(text, "I do not know.")
                self._send(200, {
                    "id": "x", "object": "chat.completion", "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                    "usage": {"prompt_tokens": 100 + len(images), "completion_tokens": 1,
                              "total_tokens": 101 + len(images)}})

        return Handler
