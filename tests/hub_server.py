"""A tiny Hugging Face Hub stand-in on 127.0.0.1: the endpoints huggingface_hub uses to download and upload files.

Downloads: ``HEAD`` and ``GET /{spaces/|datasets/}{repo_id}/resolve/{revision}/{filename}``,
with the headers huggingface_hub reads (``X-Repo-Commit``, ``ETag``,
``Content-Length``) and its error codes (``X-Error-Code: EntryNotFound`` /
``RepoNotFound``). Uploads of small files: ``POST /api/repos/create``,
``/api/{type}s/{repo}/preupload/{rev}`` (every file "regular", inline) and
``/api/{type}s/{repo}/commit/{rev}`` (NDJSON, base64 contents). Tests reach the
real client code over real HTTP and never the real Hub. Stdlib only.
"""

from __future__ import annotations

import base64
import hashlib
import json
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
    created: list[dict[str, Any]] = field(default_factory=list)  # bodies of repo creations

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

    def do_POST(self) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append(("POST", path))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            body = json.loads(raw)
            self.hub.created.append({k: body[k] for k in ("name", "organization", "type", "sdk") if k in body})
            repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
            prefix = {"space": "spaces/", "dataset": "datasets/"}.get(body.get("type"), "")
            self.hub.files.setdefault((body.get("type") or "model", repo_id), {})
            return self._json({"url": f"http://{self.headers['Host']}/{prefix}{repo_id}", "name": repo_id})
        if len(parts) >= 5 and parts[0] == "api" and parts[-2] in ("preupload", "commit"):
            repo_type = {"spaces": "space", "datasets": "dataset"}.get(parts[1], "model")
            repo_id = "/".join(parts[2:-2])
            if parts[-2] == "preupload":
                files = json.loads(raw)["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                             for f in files]})
            repo = self.hub.files.setdefault((repo_type, repo_id), {})
            for line in raw.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    repo[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            commit = hashlib.sha1(repr(sorted(repo.items())).encode()).hexdigest()
            prefix = "spaces/" if repo_type == "space" else ""
            return self._json({"commitUrl": f"http://{self.headers['Host']}/{prefix}{repo_id}/commit/{commit}",
                               "commitOid": commit, "pullRequestUrl": None})
        self._send(404, b"not found", {}, True)

    def _json(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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
