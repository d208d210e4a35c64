"""A small fake Kubernetes API server (aiohttp, real HTTP on loopback).

A fake, because tests cannot run a real API server: it serves just what the driver uses —
Nodes (GET, JSON-Patch PATCH with ``test`` ops and resourceVersion bumps), CSINodes,
ConfigMaps and Secrets — and lets tests inject faults (queued error statuses), concurrent
edits (a hook run just before a PATCH is applied) and wait for requests to arrive.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

Json = dict[str, Any]


@dataclass
class Seen:
    method: str
    path: str
    authorization: str
    content_type: str
    body: Any


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}
    return web.json_response(body, status=code)


class PatchTestFailed(Exception):
    pass


def _apply_json_patch(document: Json, operations: list[Json]) -> Json:
    """RFC 6902 for object paths only (all the driver sends)."""
    result = copy.deepcopy(document)
    for operation in operations:
        *parents, last = operation["path"].lstrip("/").split("/")
        target = result
        for part in parents:
            target = target.setdefault(part, {})
        if operation["op"] == "test":
            if target.get(last) != operation["value"]:
                raise PatchTestFailed(f"test failed at {operation['path']}")
        elif operation["op"] in ("add", "replace"):
            target[last] = operation["value"]
        elif operation["op"] == "remove":
            del target[last]
        else:
            raise ValueError(operation["op"])
    return result


@dataclass
class FakeKubeApi:
    token: str = "test-token"
    nodes: dict[str, Json] = field(default_factory=dict)
    csinodes: dict[str, Json] = field(default_factory=dict)
    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    # (method, path) -> statuses answered instead of the real handling, first first.
    faults: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # Called with the node name just before a PATCH is applied (a concurrent writer).
    before_patch: Callable[[str], None] | None = None
    _version: int = 100
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    url: str = ""

    def add_node(self, name: str, taints: list[Json] | None = None,
                 labels: dict[str, str] | None = None) -> None:
        self.nodes[name] = {"apiVersion": "v1", "kind": "Node",
                            "metadata": {"name": name, "labels": labels or {},
                                         "resourceVersion": self._next_version()},
                            "spec": {"taints": taints} if taints is not None else {}}

    def set_taints(self, name: str, taints: list[Json]) -> None:
        """Someone else edits the Node (bumps its resourceVersion)."""
        node = self.nodes[name]
        node["spec"]["taints"] = taints
        node["metadata"]["resourceVersion"] = self._next_version()

    def taints(self, name: str) -> list[Json]:
        return list(self.nodes[name]["spec"].get("taints") or [])

    def set_csinode(self, name: str, drivers: list[str]) -> None:
        self.csinodes[name] = {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                               "metadata": {"name": name},
                               "spec": {"drivers": [{"name": d, "nodeID": name}
                                                    for d in drivers]}}

    def count(self, method: str, path: str) -> int:
        return sum(1 for seen in self.requests if seen.method == method and seen.path == path)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        async with self._changed:
            await self._changed.wait_for(predicate)

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    async def start(self, tls: ssl.SSLContext | None = None) -> str:
        """Listen on loopback (HTTPS with ``tls``, as a real API server); returns the URL."""
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/api/v1/nodes/{name}", self._get_node)
        app.router.add_patch("/api/v1/nodes/{name}", self._patch_node)
        app.router.add_get("/apis/storage.k8s.io/v1/csinodes/{name}", self._get_csinode)
        app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", self._get_config_map)
        app.router.add_get("/api/v1/namespaces/{ns}/secrets/{name}", self._get_secret)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.requests.append(Seen(request.method, request.path,
                                  request.headers.get("Authorization", ""),
                                  request.content_type, body))
        try:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _status(401, "Unauthorized", "bad or missing bearer token")
            queued = self.faults.get((request.method, request.path))
            if queued:
                code = queued.pop(0)
                return _status(code, "Injected", f"injected {code}")
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            async with self._changed:
                self._changed.notify_all()

    async def _get_node(self, request: web.Request) -> web.Response:
        node = self.nodes.get(request.match_info["name"])
        if node is None:
            return _status(404, "NotFound", "node not found")
        return web.json_response(node)

    async def _patch_node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.nodes:
            return _status(404, "NotFound", "node not found")
        if request.content_type != "application/json-patch+json":
            return _status(415, "UnsupportedMediaType", request.content_type)
        if self.before_patch is not None:
            self.before_patch(name)
        try:
            patched = _apply_json_patch(self.nodes[name], await request.json())
        except PatchTestFailed as exc:
            return _status(422, "Invalid", str(exc))
        patched["metadata"]["resourceVersion"] = self._next_version()
        self.nodes[name] = patched
        return web.json_response(patched)

    async def _get_csinode(self, request: web.Request) -> web.Response:
        csinode = self.csinodes.get(request.match_info["name"])
        if csinode is None:
            return _status(404, "NotFound", "csinode not found")
        return web.json_response(csinode)

    async def _get_config_map(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.config_maps:
            return _status(404, "NotFound", "configmap not found")
        return web.json_response({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": key[1], "namespace": key[0]},
                                  "data": self.config_maps[key]})

    async def _get_secret(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.secrets:
            return _status(404, "NotFound", "secret not found")
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in self.secrets[key].items()}
        return web.json_response({"apiVersion": "v1", "kind": "Secret",
                                  "metadata": {"name": key[1], "namespace": key[0]},
                                  "data": encoded})


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 and the CA file a client trusts it with."""
    cert, key = directory / "ca.crt", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert
