"""The Kubernetes API through kubernetes-asyncio: the one place that imports it.

``KubernetesAsyncioKube`` implements ``efs_csi.kube.Kube`` against a ``KubeEndpoint``. The token
file is re-read when it changes, because projected service-account tokens rotate.
"""

from __future__ import annotations

import base64
import importlib
import importlib.machinery
import importlib.util
import json
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from kubernetes_asyncio.client.api.core_v1_api import CoreV1Api
    from kubernetes_asyncio.client.api.storage_v1_api import StorageV1Api
    from kubernetes_asyncio.client.api_client import ApiClient
    from kubernetes_asyncio.client.configuration import Configuration
    from kubernetes_asyncio.client.exceptions import ApiException

from efs_csi.errors import CsiError, NotFound, PermissionDenied, Unavailable
from efs_csi.kube import KubeConflict, KubeEndpoint, NodeInfo, PersistentVolumeInfo, Taint

Json = dict[str, Any]

# The packages between this adapter and the modules it uses, whose __init__ modules import all
# of kubernetes-asyncio.
_PACKAGES = ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.client.api",
             "kubernetes_asyncio.client.models")


def import_without_package_inits(*names: str) -> list[types.ModuleType]:
    """kubernetes-asyncio's modules ``names``, loaded without its packages' __init__ modules.

    Those import every API class and its ~1,500 model modules (about 35 MiB and 0.3 s), while
    this adapter reads answers as JSON and never builds a model. So while ``names`` load, empty
    stand-ins take the packages' places; then they are taken out again, and a later ``import
    kubernetes_asyncio`` (as in a test process) runs the real __init__ modules, which reuse the
    modules already loaded. A package already imported whole is used as it is.
    """
    stand_ins: list[types.ModuleType] = []
    if _PACKAGES[0] not in sys.modules:
        spec = importlib.util.find_spec(_PACKAGES[0])
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("kubernetes-asyncio is not installed")
        base = Path(next(iter(spec.submodule_search_locations)))
        for package in _PACKAGES:
            stand_in = types.ModuleType(package)
            location = str(base.joinpath(*package.split(".")[1:]))
            stand_in.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
            stand_in.__spec__.submodule_search_locations = [location]
            stand_in.__path__ = [location]
            sys.modules[package] = stand_in
            stand_ins.append(stand_in)
    try:
        return [importlib.import_module(name) for name in names]
    finally:
        for stand_in in stand_ins:
            if sys.modules.get(stand_in.__name__) is stand_in:
                del sys.modules[stand_in.__name__]


_configuration, _api_client, _core_v1, _storage_v1, _exceptions = import_without_package_inits(
    "kubernetes_asyncio.client.configuration", "kubernetes_asyncio.client.api_client",
    "kubernetes_asyncio.client.api.core_v1_api", "kubernetes_asyncio.client.api.storage_v1_api",
    "kubernetes_asyncio.client.exceptions")
if not TYPE_CHECKING:
    Configuration = _configuration.Configuration
    ApiClient = _api_client.ApiClient
    CoreV1Api = _core_v1.CoreV1Api
    StorageV1Api = _storage_v1.StorageV1Api
    ApiException = _exceptions.ApiException


class _TokenFile:
    """Reads the bearer token again whenever the file changes (rotated projected tokens)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int] | None = None

    def refresh(self, configuration: Configuration) -> None:
        info = self._path.stat()
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._seen:
            token = self._path.read_text().strip()
            # The BearerToken key is the one kubernetes-asyncio sends; "authorization" is
            # silently ignored.
            configuration.api_key["BearerToken"] = f"Bearer {token}"
            self._seen = stamp


def _taint_from_api(taint: Mapping[str, Any]) -> Taint:
    value = taint.get("value")
    return Taint(key=str(taint["key"]), effect=str(taint["effect"]),
                 value=None if value is None else str(value))


def _taint_to_api(taint: Taint) -> dict[str, str]:
    body = {"key": taint.key, "effect": taint.effect}
    if taint.value is not None:
        body["value"] = taint.value
    return body


def _field(document: Json, what: str, name: str, kind: type) -> Any:
    """``document[name]``, where an absent key or null means empty; a wrong type is an error."""
    value = document.get(name)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise Unavailable(f"kubernetes API answered {what} with a malformed {name!r}")
    return value


def _status_error(what: str, status: int, reason: str) -> CsiError:
    if status == 404:
        return NotFound(f"{what} not found")
    if status in (409, 422):
        return KubeConflict(f"{what}: {status} {reason}")
    if status == 403:
        return PermissionDenied(f"{what}: 403 Forbidden for this ServiceAccount")
    return Unavailable(f"kubernetes API error on {what}: {status} {reason}")


class KubernetesAsyncioKube:
    """``Kube`` over kubernetes-asyncio. Build it inside the running event loop; ``close`` it.

    Answers are read as the JSON the server sent, not through kubernetes-asyncio's models: the
    models refuse what the real API serves (a fresh CSINode's ``"drivers": null``), and only a
    few fields are needed. Any answer without them is an ``Unavailable`` error here, the one
    place that reads the API, so no caller sees a model's ``ValueError``.
    """

    def __init__(self, endpoint: KubeEndpoint, *, timeout_s: float = 15.0) -> None:
        configuration = Configuration(host=endpoint.host)
        if endpoint.ca_file is not None:
            configuration.ssl_ca_cert = str(endpoint.ca_file)
        if endpoint.token_file is not None:
            token = _TokenFile(endpoint.token_file)
            token.refresh(configuration)
            configuration.refresh_api_key_hook = token.refresh
        self._api_client = ApiClient(configuration)
        self._core = CoreV1Api(self._api_client)
        self._storage = StorageV1Api(self._api_client)
        self._timeout_s = timeout_s

    async def _call(self, what: str, method: Any, *args: Any) -> Json:
        """Call ``method`` and return the JSON object the server answered with."""
        try:
            response = await method(*args, _request_timeout=self._timeout_s,
                                    _preload_content=False)
            try:
                body = await response.read()
            finally:
                response.release()
        except ApiException as exc:  # raised before any answer (a request it cannot build)
            raise Unavailable(f"kubernetes API request for {what} failed: {exc.reason}") \
                from None
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise Unavailable(f"kubernetes API unreachable for {what}: "
                              f"{type(exc).__name__}") from None
        if not 200 <= response.status <= 299:
            raise _status_error(what, response.status, response.reason or "")
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise Unavailable(f"kubernetes API answered {what} with something that is not a "
                              "JSON object")
        return document

    async def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        what = f"ConfigMap {namespace}/{name}"
        config_map = await self._call(what, self._core.read_namespaced_config_map, name,
                                      namespace)
        value = _field(config_map, what, "data", dict).get(key)
        if not isinstance(value, str):
            raise NotFound(f"{what} has no key {key!r}")
        return value

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        what = f"Secret {namespace}/{name}"
        secret = await self._call(what, self._core.read_namespaced_secret, name, namespace)
        value = _field(secret, what, "data", dict).get(key)
        if not isinstance(value, str):
            raise NotFound(f"{what} has no key {key!r}")
        try:
            return base64.b64decode(value, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise Unavailable(f"{what} key {key!r} is not base64 of UTF-8 text") from None

    async def get_node(self, name: str) -> NodeInfo:
        what = f"Node {name}"
        node = await self._call(what, self._core.read_node, name)
        metadata = _field(node, what, "metadata", dict)
        spec = _field(node, what, "spec", dict)
        try:
            taints = tuple(_taint_from_api(t) for t in _field(spec, what, "taints", list))
            labels = {str(k): str(v) for k, v in _field(metadata, what, "labels", dict).items()}
            return NodeInfo(name=str(metadata["name"]),
                            resource_version=str(metadata["resourceVersion"]),
                            labels=labels, taints=taints)
        except (KeyError, TypeError, AttributeError):
            raise Unavailable(f"kubernetes API answered {what} without its name, "
                              "resourceVersion or well-formed taints") from None

    async def read_persistent_volume(self, name: str) -> PersistentVolumeInfo:
        what = f"PersistentVolume {name}"
        volume = await self._call(what, self._core.read_persistent_volume, name)
        metadata = _field(volume, what, "metadata", dict)
        spec = _field(volume, what, "spec", dict)
        csi = _field(spec, what, "csi", dict)
        status = _field(volume, what, "status", dict)

        def text(document: Json, key: str) -> str | None:
            value = document.get(key)
            return value if isinstance(value, str) else None

        return PersistentVolumeInfo(
            name=text(metadata, "name") or name, driver=text(csi, "driver"),
            volume_handle=text(csi, "volumeHandle"),
            reclaim_policy=text(spec, "persistentVolumeReclaimPolicy") or "",
            phase=text(status, "phase") or "",
            deleting=metadata.get("deletionTimestamp") is not None)

    async def replace_node_taints(self, node: NodeInfo, taints: tuple[Taint, ...]) -> None:
        # A list body makes kubernetes-asyncio send a JSON Patch. Taints have no merge key, so
        # the whole list is replaced, and the "test" makes the API refuse (422) if the Node
        # changed since we read it: nobody else's taint edit is lost.
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": node.resource_version},
            {"op": "add", "path": "/spec/taints", "value": [_taint_to_api(t) for t in taints]},
        ]
        await self._call(f"Node {node.name}", self._core.patch_node, node.name, patch)

    async def csinode_has_driver(self, node_name: str, driver: str) -> bool | None:
        what = f"CSINode {node_name}"
        try:
            csinode = await self._call(what, self._storage.read_csi_node, node_name)
        except NotFound:
            return None
        # kubelet creates the CSINode with no drivers, which the API serves as null.
        drivers = _field(_field(csinode, what, "spec", dict), what, "drivers", list)
        return any(isinstance(entry, dict) and entry.get("name") == driver
                   for entry in drivers)

    async def close(self) -> None:
        await self._api_client.close()
