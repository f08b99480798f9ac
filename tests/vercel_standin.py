"""A loopback stand-in for the parts of Vercel's REST API that doctor reads, answering the recorded shapes.

The answers are the files in ``tests/data/vercel/`` (see SOURCES.md there), with the values a
test decides: which value the single-variable endpoint returns, whether it is sensitive, what
the project's bypass secrets are. Every request is recorded so tests can check what was asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).parent / "data" / "vercel"


def recorded(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@dataclass
class VercelStandIn:
    """What the stand-in answers; change the fields before or during a test."""

    token: str
    project: str = "genapp"
    envs: dict[str, Any] = field(default_factory=lambda: recorded("env_incident.json"))
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # env id -> single-variable answer
    project_body: dict[str, Any] = field(default_factory=lambda: recorded("project.json"))
    deployments: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "production": recorded("deployments_production.json"), "preview": recorded("deployments_preview.json")})
    runtime_logs: dict[str, str] = field(default_factory=dict)  # deployment id -> NDJSON (application/stream+json)
    deployment_bodies: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "dpl_0ProdOld": recorded("deployment_production.json")})  # GET /v13/deployments/{id}
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, query: dict[str, list[str]], auth: str | None) -> tuple[int, Any]:
        self.requests.append((path, query))
        if auth != f"Bearer {self.token}":
            return 401, {"error": {"code": "forbidden", "message": "Not authorized", "invalidToken": True}}
        if path == f"/v10/projects/{self.project}/env":
            return 200, self.envs
        if path.startswith(f"/v1/projects/{self.project}/env/"):
            ident = path.rsplit("/", 1)[1]
            body = self.values.get(ident)
            return (200, body) if body is not None else (404, {"error": {"code": "not_found", "message": "x"}})
        if path == f"/v9/projects/{self.project}":
            return 200, self.project_body
        if path.startswith(f"/v1/projects/{self.project}/deployments/") and path.endswith("/runtime-logs"):
            return 200, RawLines(self.runtime_logs.get(path.split("/")[5], ""))
        if path.startswith("/v13/deployments/"):
            body = self.deployment_bodies.get(path.rsplit("/", 1)[1])
            return (200, body) if body is not None else (404, {"error": {"code": "not_found", "message": "x"}})
        if path == "/v6/deployments":
            target = (query.get("target") or ["preview"])[0]
            return 200, self.deployments.get(target, {"deployments": []})
        return 404, {"error": {"code": "not_found", "message": "no such route"}}


@dataclass(frozen=True)
class RawLines:
    """A streamed answer: lines of JSON sent as they are."""

    text: str


@contextmanager
def vercel_standin(state: VercelStandIn) -> Iterator[VercelStandIn]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            status, body = state.answer(parts.path, parse_qs(parts.query), self.headers.get("authorization"))
            stream = isinstance(body, RawLines)
            raw = body.text.encode() if isinstance(body, RawLines) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/stream+json" if stream else "application/json; charset=utf-8")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
