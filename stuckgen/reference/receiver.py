"""A recording HTTP receiver on loopback: the stand-in for Slack, PagerDuty, a webhook endpoint or a cron monitor.

It records every request (method, path with query, headers, body) and answers
with a fixed status and body, the way the real service answers, which tests
change to play an outage. Used by the tests of notifications and heartbeats.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLACK_OK = (200, "text/html", b"ok")
PAGERDUTY_ACCEPTED = (202, "application/json", b'{"status":"success","message":"Event processed"}')
WEBHOOK_OK = (204, "text/plain", b"")
MONITOR_OK = (200, "text/plain", b"OK")


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecordingReceiver:
    """``answer`` is (status, content type, body); ``got`` the requests so far, in order."""

    answer: tuple[int, str, bytes] = MONITOR_OK
    got: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                rec.got.append(Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                        self.rfile.read(n)))
                status, ctype, body = rec.answer
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = do_HEAD = _record

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RecordingReceiver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
