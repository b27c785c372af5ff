"""A Hugging Face Hub stand-in on loopback: serves dataset repos from local files over the Hub's HTTP file protocol,
so huggingface_hub's real download code (``snapshot_download`` → ``repo_info`` / ``list_repo_tree`` /
``hf_hub_download``) runs against it through ``HF_ENDPOINT``. Only what a public dataset download asks for:

    GET  /api/datasets/<org>/<name>/revision/<rev>             repo info: {"id", "sha", "siblings"}
    GET  /api/datasets/<org>/<name>/tree/<rev>[/<path>]         the file tree (one page): [{"type", "oid", "size", "path"}]
    HEAD /datasets/<org>/<name>/resolve/<rev>/<file>            X-Repo-Commit, ETag, Content-Length
    GET  /datasets/<org>/<name>/resolve/<rev>/<file>            the bytes (Range honoured)

``<rev>`` is the repo's commit sha or ``main``; anything else is 404 with the Hub's ``X-Error-Code``
(``RevisionNotFound``, ``RepoNotFound``, ``EntryNotFound``). Every request is recorded in ``server.requests``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    files: dict[str, bytes]  # path in the repo -> content
    sha: str  # the commit, 40 hex digits

    def oid(self, path: str) -> str:  # git's blob id
        data = self.files[path]
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubServer:
    repos: dict[str, Repo]  # "org/name" -> repo
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __enter__(self) -> "HubServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _send(self, status: int, payload: bytes, headers: dict, body: bool) -> None:
                self.send_response(status)
                for key, value in {"Content-Length": str(len(payload)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                if body:
                    self.wfile.write(payload)

            def _error(self, code: str, body: bool) -> None:
                payload = json.dumps({"error": code}).encode()
                self._send(404, payload, {"X-Error-Code": code, "X-Error-Message": code,
                                          "Content-Type": "application/json"}, body)

            def _serve(self, body: bool) -> None:
                path = unquote(urlparse(self.path).path)
                server.requests.append((self.command, path))
                api = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/(revision|tree)/([^/]+)(?:/(.*))?", path)
                resolve = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                match = api or resolve
                if match is None or match.group(1) not in server.repos:
                    return self._error("RepoNotFound", body)
                repo = server.repos[match.group(1)]
                rev = match.group(3) if api else match.group(2)
                if rev not in (repo.sha, "main"):
                    return self._error("RevisionNotFound", body)
                json_headers = {"Content-Type": "application/json", "X-Repo-Commit": repo.sha}
                if api and api.group(2) == "revision":
                    info = {"id": api.group(1), "sha": repo.sha, "private": False, "gated": False,
                            "siblings": [{"rfilename": name} for name in sorted(repo.files)]}
                    return self._send(200, json.dumps(info).encode(), json_headers, body)
                if api:  # tree, recursive, one page (no Link header)
                    prefix = (api.group(4) or "").strip("/")
                    entries = [{"type": "file", "oid": repo.oid(name), "size": len(repo.files[name]), "path": name}
                               for name in sorted(repo.files) if name.startswith(prefix)]
                    return self._send(200, json.dumps(entries).encode(), json_headers, body)
                name = resolve.group(3)
                if name not in repo.files:
                    return self._error("EntryNotFound", body)
                data = repo.files[name]
                headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{repo.oid(name)}"',
                           "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
                ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if ranged:
                    start = int(ranged.group(1))
                    end = int(ranged.group(2)) if ranged.group(2) else len(data) - 1
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                    return self._send(206, data[start : end + 1], headers, body)
                return self._send(200, data, headers, body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
