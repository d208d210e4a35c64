"""A fake Kubernetes API server for the faults a real one cannot be made to answer on cue, and
for the node's start-up helper where a whole control plane would be out of proportion (the
start-up benchmark, the node binary's failure-mode tests).

The adapter and the taint removal are tested against a real kube-apiserver
(tests/cluster/test_kube_adapter.py). What a real server will not do when asked is answer a
given request with a 500, 503 or 409, or with a malformed body: this fake (aiohttp, real HTTP on
loopback, over TLS when asked: the node finds the API in-cluster only at an https:// address)
serves Nodes (GET, JSON-Patch PATCH with ``test`` ops and resourceVersion bumps) and CSINodes as
the real one does (a CSINode without drivers as ``"drivers": null``), and lets a caller queue
such answers per request. It lives in testbed/ because the benchmarks use it too.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Json = dict[str, Any]


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed serving certificate for 127.0.0.1 (its own CA) and its key."""

    certificate: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> TlsFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-kube-apiserver")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
        directory.mkdir(parents=True, exist_ok=True)
        files = cls(directory / "fake-kube.crt", directory / "fake-kube.key")
        files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        return files


@dataclass
class Seen:
    method: str
    path: str


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}
    return web.json_response(body, status=code)


class PatchTestFailed(Exception):
    pass


def _apply_json_patch(document: Json, operations: list[Json]) -> Json:
    """RFC 6902 ``test`` and ``add`` on object paths (all the driver sends)."""
    result = copy.deepcopy(document)
    for operation in operations:
        *parents, last = operation["path"].lstrip("/").split("/")
        target = result
        for part in parents:
            target = target.setdefault(part, {})
        if operation["op"] == "test":
            if target.get(last) != operation["value"]:
                raise PatchTestFailed(f"test failed at {operation['path']}")
        elif operation["op"] == "add":
            target[last] = operation["value"]
        else:
            raise ValueError(operation["op"])
    return result


@dataclass
class FakeKubeApi:
    token: str = "test-token"
    nodes: dict[str, Json] = field(default_factory=dict)
    csinodes: dict[str, Json] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    # (method, path) -> answers given instead of the real handling, first first: a status code
    # (a Status body with it) or raw bytes (answered with 200).
    faults: dict[tuple[str, str], list[int | bytes]] = field(default_factory=dict)
    _version: int = 100
    _runner: web.AppRunner | None = None
    url: str = ""
    port: int = 0

    def add_node(self, name: str, taints: list[Json] | None = None,
                 labels: dict[str, str] | None = None) -> None:
        self.nodes[name] = {"apiVersion": "v1", "kind": "Node",
                            "metadata": {"name": name, "resourceVersion": self._next_version(),
                                         "labels": labels or {}},
                            "spec": {"taints": taints} if taints is not None else {}}

    def taints(self, name: str) -> list[Json]:
        return list(self.nodes[name]["spec"].get("taints") or [])

    def set_csinode(self, name: str, drivers: list[str]) -> None:
        listed = [{"name": d, "nodeID": name} for d in drivers] or None
        self.csinodes[name] = {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                               "metadata": {"name": name}, "spec": {"drivers": listed}}

    def count(self, method: str, path: str) -> int:
        return sum(1 for seen in self.requests if seen.method == method and seen.path == path)

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    async def start(self, tls: TlsFiles | None = None) -> str:
        """Listen on loopback (over TLS with ``tls``); returns the URL."""
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/api/v1/nodes/{name}", self._get_node)
        app.router.add_patch("/api/v1/nodes/{name}", self._patch_node)
        app.router.add_get("/apis/storage.k8s.io/v1/csinodes/{name}", self._get_csinode)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.certificate, tls.key)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.port = port
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(Seen(request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "bad or missing bearer token")
        queued = self.faults.get((request.method, request.path))
        if queued:
            answer = queued.pop(0)
            if isinstance(answer, bytes):
                return web.Response(body=answer, content_type="application/json")
            return _status(answer, "Injected", f"injected {answer}")
        return await handler(request)  # type: ignore[no-any-return]

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
        try:
            patched = _apply_json_patch(self.nodes[name], json.loads(await request.read()))
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
