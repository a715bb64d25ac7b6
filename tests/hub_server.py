"""A tiny Hugging Face Hub stand-in on 127.0.0.1: the file endpoints ``hf_hub_download`` uses.

``HEAD`` and ``GET /{spaces/|datasets/}{repo_id}/resolve/{revision}/{filename}``,
with the headers huggingface_hub reads (``X-Repo-Commit``, ``ETag``,
``Content-Length``) and its error codes (``X-Error-Code: EntryNotFound`` /
``RepoNotFound``), so tests reach the real client code over real HTTP and never
the real Hub. Stdlib only.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

PREFIXES = {"spaces": "space", "datasets": "dataset"}


@dataclass
class HubServer:
    files: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)  # (type, repo) -> name -> bytes
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)

    def publish(self, repo_id: str, files: dict[str, str | bytes], repo_type: str = "space") -> None:
        self.files[(repo_type, repo_id)] = {
            name: data.encode() if isinstance(data, str) else data for name, data in files.items()}

    def publish_folder(self, repo_id: str, folder: str | Path, repo_type: str = "space") -> None:
        self.publish(repo_id, {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}, repo_type)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "HubServer":
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    hub: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append((self.command, path))
        parts = path.strip("/").split("/")
        repo_type = PREFIXES.get(parts[0], "model")
        if repo_type != "model":
            parts = parts[1:]
        if "resolve" not in parts:
            return self._send(404, b"not found", {"X-Error-Code": "EntryNotFound"}, body)
        at = parts.index("resolve")
        repo_id, revision, filename = "/".join(parts[:at]), parts[at + 1], "/".join(parts[at + 2:])
        repo = self.hub.files.get((repo_type, repo_id))
        if repo is None:
            return self._send(401, b"Repository Not Found", {"X-Error-Code": "RepoNotFound"}, body)
        if filename not in repo:
            return self._send(404, b"Entry not found", {"X-Error-Code": "EntryNotFound"}, body)
        data = repo[filename]
        commit = hashlib.sha1(repr(sorted(repo.items())).encode()).hexdigest()
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
        self._send(200, data, headers, body)

    def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)
