"""A loopback HTTP proxy in front of moto's server that behaves more like real EFS.

Why a proxy and not a mock: the driver's real aiobotocore client, its signing, retries and
error parsing all run for real over HTTP; only what moto's EFS model lacks is added here
(it is a fake for exactly those parts, which moto cannot reach):

- ClientToken idempotency for CreateAccessPoint: the same token with the same parameters
  returns the same access point; the same token with different parameters answers
  ``IdempotentParameterMismatch`` (409). After ``idempotency_window`` seconds (``None`` =
  never) a repeated token answers ``AccessPointAlreadyExists`` (409) naming the existing
  access point, as EFS does for a token reused long after the first create.
- the per-file-system access-point limit (``AccessPointLimitExceeded``, 403);
- ClientToken length (1..64, ``BadRequest``), which botocore does not check;
- EFS's Tag rules on CreateAccessPoint (``testbed.efs_rules``; ``BadRequest``), which
  moto does not check: a tag EFS would refuse fails the create here too;
- ``MaxResults``/``NextToken`` pagination of DescribeAccessPoints (default page 100, as EFS):
  a listing's pages come from what its first page saw (moto, which has no pagination, is
  listed once per listing; after a minute a NextToken lists it again), in order of id; and
  moto's own failures of a listing under concurrent creates (a 5xx EFS never answers) are
  tried again inside the proxy;
- ``FileSystemNotFound`` for unknown file systems in Create/DescribeAccessPoints, and
  ``AccessPointNotFound`` when deleting an unknown access point;
- IAM, on demand (``iam``, a ``testbed.iam_policy.IamAuthorizer``): each EFS call is
  authorised as EFS does (tag-on-create included) against an identity policy such as
  docs/iam-policy.json, and refused with EFS's ``AccessDeniedException`` (403) and AWS's own
  wording, which names the caller's assumed-role ARN;
- fault injection on demand: a fraction of calls answered ``ThrottlingException`` (400),
  a fraction answered 5xx, and random latency; globally or per operation.
- holding every request of chosen operations until released (``hold``/``release``), so a test
  can make other writes land first, on cue;
- a server-side rate limit per operation (``rate_limit``): a token bucket per API that lets
  ``rate`` calls per second through (bursts up to ``burst``) and answers the others
  ``ThrottlingException``, so the throttling follows the client's request rate as EFS's own
  API rate limits do (a fake: EFS publishes no exact algorithm, only that calls beyond a
  per-API rate are throttled).

It counts calls per operation (``calls``), faults included: the benchmarks report EFS calls per
create from these counters. Every other request (EC2, STS, moto-api) is forwarded untouched.

The proxy runs its own event loop in a daemon thread, so sync tests, async tests and
standalone scripts all use it the same way::

    with EfsProxy(moto_url) as proxy:          # or proxy.start() ... proxy.stop()
        env = proxy.environment()              # AWS_ENDPOINT_URL -> the proxy

Access points are indexed per file system the first time the proxy sees that file system
(one full listing from moto), then kept current from the creates and deletes passing through
it; create and delete access points through the proxy (or call ``forget()``) so the limit and
the answers to deletes stay exact.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import boto3
from aiohttp import ClientSession, ClientTimeout, web

from testbed.efs_rules import tag_violations
from testbed.iam_policy import IamAuthorizer, efs_authorizations
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint

API = "/2015-02-01"
_EFS_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(rf"^{API}/access-points$"), "CreateAccessPoint"),
    ("GET", re.compile(rf"^{API}/access-points$"), "DescribeAccessPoints"),
    ("DELETE", re.compile(rf"^{API}/access-points/[^/]+$"), "DeleteAccessPoint"),
    ("POST", re.compile(rf"^{API}/file-systems$"), "CreateFileSystem"),
    ("GET", re.compile(rf"^{API}/file-systems$"), "DescribeFileSystems"),
    ("DELETE", re.compile(rf"^{API}/file-systems/[^/]+$"), "DeleteFileSystem"),
    ("POST", re.compile(rf"^{API}/mount-targets$"), "CreateMountTarget"),
    ("GET", re.compile(rf"^{API}/mount-targets$"), "DescribeMountTargets"),
    ("DELETE", re.compile(rf"^{API}/mount-targets/[^/]+$"), "DeleteMountTarget"),
    ("POST", re.compile(rf"^{API}/resource-tags/[^/]+$"), "TagResource"),
]
_EFS_OPERATIONS = frozenset(name for _, _, name in _EFS_ROUTES)
# A listing's later pages come from what its first page saw, for this long, for this many.
_LISTING_KEPT_FOR = 60.0
_LISTINGS_KEPT = 64
# Headers that belong to one hop, or that aiohttp recomputes for the forwarded body.
_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                          "content-encoding", "keep-alive", "server", "date"})


def operation_of(method: str, path: str, body: bytes) -> str:
    """The API operation of a request: EFS by REST route, query-protocol services by Action."""
    for route_method, pattern, name in _EFS_ROUTES:
        if method == route_method and pattern.match(path):
            return name
    if method == "POST" and path == "/" and body:
        action = parse_qs(body.decode(errors="replace")).get("Action")
        if action:
            return action[0]
    return f"{method} {path}"


@dataclass(frozen=True)
class Faults:
    """What to inject into a share of the calls (fractions are in [0, 1])."""

    throttle: float = 0.0
    server_error: float = 0.0
    server_error_status: int = 500
    latency: tuple[float, float] = (0.0, 0.0)  # uniform random seconds before answering
    fail_with: tuple[int, str] | None = None  # (HTTP status, error code) for every call


@dataclass
class _RateLimit:
    """A token bucket: ``rate`` calls per second, bursts up to ``burst``."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def allow(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class _FileSystemIndex:
    access_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _fingerprint(item: dict[str, Any]) -> str:
    """What must match for a repeated ClientToken to be the same request."""
    tags = sorted((tag.get("Key", ""), tag.get("Value", "")) for tag in item.get("Tags") or ())
    return json.dumps([item.get("FileSystemId"), item.get("PosixUser") or None,
                       item.get("RootDirectory") or {"Path": "/"}, tags], sort_keys=True)


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"ErrorCode": code, "Message": message, **extra}, status=status,
                             headers={"x-amzn-ErrorType": code})


def _query_error(status: int, code: str, message: str) -> web.Response:
    """An error in the query protocol's XML (STS), for faults injected outside EFS."""
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            "<RequestId>efs-proxy</RequestId></ErrorResponse>")
    return web.Response(status=status, body=body.encode(), content_type="text/xml")


def _file_system_not_found(file_system_id: str) -> web.Response:
    return _error(404, "FileSystemNotFound", f"File system '{file_system_id}' does not exist.")


class EfsProxy:
    """The proxy; see the module docstring. Settings may be changed while it runs."""

    def __init__(self, upstream: str, *, access_point_limit: int = 10000,
                 idempotency_window: float | None = None, seed: int | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.access_point_limit = access_point_limit
        self.idempotency_window = idempotency_window
        self.iam: IamAuthorizer | None = None  # None: every call is allowed
        self.url = ""
        self._random = random.Random(seed)
        self._faults: dict[str | None, Faults] = {}
        self._rate_limits: dict[str, _RateLimit] = {}
        self._counts_lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._indexes: dict[str, _FileSystemIndex] = {}
        self._known_file_systems: set[str] = set()
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (access point id, created)
        # Listings under way: number -> (when its first page listed moto, its items by id).
        self._listings: dict[int, tuple[float, list[dict[str, Any]]]] = {}
        self._listing_number = 0
        self._held: frozenset[str] = frozenset()
        self._released: asyncio.Event | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> EfsProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start() below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="efs-proxy", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise RuntimeError("EFS proxy failed to start") from failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = self._thread = None

    def __enter__(self) -> EfsProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=120), auto_decompress=True)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # settings and counters ---------------------------------------------------------------

    def inject(self, *, throttle: float = 0.0, server_error: float = 0.0,
               server_error_status: int = 500, latency: tuple[float, float] = (0.0, 0.0),
               fail_with: tuple[int, str] | None = None,
               operations: Iterable[str] | None = None) -> None:
        """Inject faults into every operation, or only into ``operations`` (EFS names).

        ``fail_with=(status, code)`` answers every such call with that AWS error.
        """
        faults = Faults(throttle, server_error, server_error_status, latency, fail_with)
        for operation in (list(operations) if operations is not None else [None]):
            self._faults[operation] = faults

    def rate_limit(self, rates: dict[str, float], *, burst: float | None = None) -> None:
        """Let ``rates[operation]`` calls per second of each operation through (bursts up to
        ``burst``, default one second's worth) and answer the rest ``ThrottlingException``."""
        now = time.monotonic()
        for operation, rate in rates.items():
            size = max(1.0, rate if burst is None else burst)
            self._rate_limits[operation] = _RateLimit(rate, size, size, now)

    def hold(self, operations: Iterable[str]) -> None:
        """Hold every request of ``operations`` (EFS names) until ``release``."""
        self._released = asyncio.Event()
        self._held = frozenset(operations)

    def release(self) -> None:
        """Let the held requests (and any later ones) through."""
        released, self._held = self._released, frozenset()
        if released is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(released.set)

    def reseed(self, seed: int) -> None:
        """Draw the injected faults from a new random sequence (repeat a scenario under other
        draws, so a figure does not hang on one sequence's unlucky tail)."""
        self._random.seed(seed)

    def clear_faults(self) -> None:
        """Drop injected faults and rate limits."""
        self._faults = {}
        self._rate_limits = {}

    @property
    def calls(self) -> Counter[str]:
        """Calls received per operation (faulted ones included); a snapshot."""
        with self._counts_lock:
            return Counter(self._calls)

    @property
    def injected(self) -> Counter[str]:
        """Faults injected per operation; a snapshot."""
        with self._counts_lock:
            return Counter(self._injected)

    def efs_calls(self) -> int:
        """All EFS API calls received (STS, EC2 and moto-api excluded)."""
        return sum(count for name, count in self.calls.items() if name in _EFS_OPERATIONS)

    def reset_counts(self) -> None:
        with self._counts_lock:
            self._calls.clear()
            self._injected.clear()

    def forget(self) -> None:
        """Drop what the proxy learned (call after resetting moto behind its back)."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._forget(), self._loop).result(30)

    async def _forget(self) -> None:
        self._indexes.clear()
        self._known_file_systems.clear()
        self._tokens.clear()
        self._listings.clear()

    def environment(self) -> dict[str, str]:
        """Environment pointing an AWS SDK in a subprocess at this proxy."""
        return MotoEndpoint(self.url).environment()

    # request handling --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        operation = operation_of(request.method, request.path, body)
        with self._counts_lock:
            self._calls[operation] += 1
        released = self._released
        if operation in self._held and released is not None:
            await released.wait()
        faulted = await self._inject_fault(operation)
        if faulted is not None:
            return faulted
        denied = await self._iam_denial(operation, request, body)
        if denied is not None:
            return _error(403, "AccessDeniedException", denied)
        if operation == "CreateAccessPoint":
            return await self._create_access_point(request, body)
        if operation == "DescribeAccessPoints" and "AccessPointId" not in request.query:
            return await self._describe_access_points(request)
        if operation == "DeleteAccessPoint":
            return await self._delete_access_point(request)
        if operation == "DeleteFileSystem":
            self._known_file_systems.discard(request.path.rsplit("/", 1)[-1])
        return await self._forward(request, body)

    async def _iam_denial(self, operation: str, request: web.Request,
                          body: bytes) -> str | None:
        """AWS's AccessDenied message when ``iam`` refuses this EFS call, else None."""
        iam = self.iam
        if iam is None or operation not in _EFS_OPERATIONS:
            return None
        request_tags: dict[str, str] = {}
        resource_tags: dict[str, str] = {}
        if operation in ("CreateAccessPoint", "TagResource") and body:
            with contextlib.suppress(ValueError):
                request_tags = {str(tag.get("Key", "")): str(tag.get("Value", ""))
                                for tag in json.loads(body).get("Tags") or ()}
        if operation in ("DeleteAccessPoint", "TagResource"):
            access_point_id = request.path.rsplit("/", 1)[-1]
            found = await self._existing(access_point_id)
            if found is None:
                status, _, data = await self._upstream(
                    "GET", f"{API}/access-points?AccessPointId={access_point_id}",
                    self._forward_headers(request))
                found = (json.loads(data).get("AccessPoints") or [{}])[0] \
                    if status == 200 else {}
            resource_tags = {str(tag.get("Key", "")): str(tag.get("Value", ""))
                             for tag in found.get("Tags") or ()}
        return iam.denial(efs_authorizations(operation, request_tags=request_tags,
                                             resource_tags=resource_tags))

    async def _inject_fault(self, operation: str) -> web.Response | None:
        answer = _error if operation in _EFS_OPERATIONS else _query_error
        limit = self._rate_limits.get(operation)
        if limit is not None and not limit.allow(time.monotonic()):
            self._count_fault(operation)
            return answer(400, "ThrottlingException", "Rate exceeded")
        faults = self._faults.get(operation) or self._faults.get(None)
        if faults is None:
            return None
        low, high = faults.latency
        if high > 0:
            await asyncio.sleep(self._random.uniform(low, high))
        if faults.fail_with is not None:
            self._count_fault(operation)
            status, code = faults.fail_with
            return answer(status, code, f"injected {code}")
        draw = self._random.random()
        if draw < faults.throttle:
            self._count_fault(operation)
            return answer(400, "ThrottlingException", "Rate exceeded")
        if draw < faults.throttle + faults.server_error:
            self._count_fault(operation)
            return answer(faults.server_error_status, "InternalServerError",
                          "injected server error")
        return None

    def _count_fault(self, operation: str) -> None:
        with self._counts_lock:
            self._injected[operation] += 1

    async def _upstream(self, method: str, path_qs: str, headers: dict[str, str],
                        body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        async with self._session.request(method, self.upstream + path_qs, headers=headers,
                                         data=body) as reply:
            data = await reply.read()
            kept = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_HEADERS}
            return reply.status, kept, data

    @staticmethod
    def _forward_headers(request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        status, headers, data = await self._upstream(
            request.method, request.path_qs, self._forward_headers(request), body)
        return web.Response(status=status, headers=headers, body=data)

    async def _file_system_exists(self, file_system_id: str, headers: dict[str, str]) -> bool:
        if file_system_id in self._known_file_systems:
            return True
        status, _, _ = await self._upstream(
            "GET", f"{API}/file-systems?FileSystemId={file_system_id}", headers)
        if status == 200:
            self._known_file_systems.add(file_system_id)
        return status == 200

    async def _index(self, file_system_id: str, headers: dict[str, str]) -> _FileSystemIndex:
        index = self._indexes.get(file_system_id)
        if index is None:
            index = _FileSystemIndex()
            self._indexes[file_system_id] = index
            async with index.lock:
                for item in await self._list_upstream(file_system_id, headers):
                    index.access_points[item["AccessPointId"]] = item
                    if item.get("ClientToken"):
                        self._tokens[item["ClientToken"]] = (item["AccessPointId"], 0.0)
        return index

    async def _list_upstream(self, file_system_id: str,
                             headers: dict[str, str]) -> list[dict[str, Any]]:
        status, _, data = await self._fetch_listing(file_system_id, headers)
        if status != 200:
            raise RuntimeError(f"moto DescribeAccessPoints answered {status}: {data!r}")
        items: list[dict[str, Any]] = json.loads(data).get("AccessPoints") or []
        return items

    async def _create_access_point(self, request: web.Request, body: bytes) -> web.Response:
        headers = self._forward_headers(request)
        try:
            wanted: dict[str, Any] = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "BadRequest", "request body is not JSON")
        file_system_id = str(wanted.get("FileSystemId") or "")
        token = str(wanted.get("ClientToken") or "")
        if not 1 <= len(token) <= 64:  # EFS's documented bounds; botocore checks only the minimum
            return _error(400, "BadRequest", "ClientToken must be 1 to 64 characters long")
        problems = tag_violations({str(tag.get("Key", "")): str(tag.get("Value", ""))
                                   for tag in wanted.get("Tags") or ()})
        if problems:
            return _error(400, "BadRequest", "tags break the Tag constraints: "
                          + "; ".join(problems))
        if not await self._file_system_exists(file_system_id, headers):
            return _file_system_not_found(file_system_id)
        index = await self._index(file_system_id, headers)
        async with index.lock:
            taken = self._tokens.get(token) if token else None
            if taken is not None:
                existing = await self._existing(taken[0])
                if existing is not None:
                    if _fingerprint(existing) != _fingerprint(wanted):
                        return _error(409, "IdempotentParameterMismatch",
                                      f"ClientToken {token} was used with other parameters")
                    window = self.idempotency_window
                    if window is not None and time.monotonic() - taken[1] >= window:
                        return _error(409, "AccessPointAlreadyExists",
                                      f"Access point with token {token} already exists.",
                                      AccessPointId=existing["AccessPointId"])
                    return web.json_response(existing)
            if len(index.access_points) >= self.access_point_limit:
                return _error(403, "AccessPointLimitExceeded",
                              f"File system {file_system_id} has reached the limit of "
                              f"{self.access_point_limit} access points.")
            status, reply_headers, data = await self._upstream(
                "POST", request.path_qs, headers, body)
            if status == 200:
                created = json.loads(data)
                index.access_points[created["AccessPointId"]] = created
                if token:
                    self._tokens[token] = (created["AccessPointId"], time.monotonic())
            return web.Response(status=status, headers=reply_headers, body=data)

    async def _existing(self, access_point_id: str) -> dict[str, Any] | None:
        for index in self._indexes.values():
            found = index.access_points.get(access_point_id)
            if found is not None:
                return found
        return None

    async def _describe_access_points(self, request: web.Request) -> web.Response:
        headers = self._forward_headers(request)
        file_system_id = request.query.get("FileSystemId", "")
        if file_system_id and not await self._file_system_exists(file_system_id, headers):
            return _file_system_not_found(file_system_id)
        try:
            page_size = int(request.query.get("MaxResults", "100"))
        except ValueError:
            return _error(400, "BadRequest", "MaxResults must be an integer")
        if page_size < 1:
            return _error(400, "BadRequest", "MaxResults must be at least 1")
        token = request.query.get("NextToken")
        try:
            snapshot, after = self._resume(token) if token else (None, "")
        except ValueError:
            return _error(400, "BadRequest", "invalid NextToken")
        if snapshot is None:
            status, reply_headers, data = await self._fetch_listing(file_system_id, headers)
            if status != 200:
                return web.Response(status=status, headers=reply_headers, body=data)
            # Sorted on the id: keyset pagination, stable while access points come and go.
            items = sorted(json.loads(data).get("AccessPoints") or [],
                           key=lambda item: str(item["AccessPointId"]))
            snapshot = self._remember_listing(items)
        items = [item for item in self._listings[snapshot][1] if item["AccessPointId"] > after]
        page, rest = items[:page_size], items[page_size:]
        reply: dict[str, Any] = {"AccessPoints": page}
        if rest:
            reply["NextToken"] = base64.urlsafe_b64encode(json.dumps(
                [snapshot, page[-1]["AccessPointId"]]).encode()).decode()
        return web.json_response(reply)

    def _resume(self, token: str) -> tuple[int | None, str]:
        """(the listing a NextToken continues, if still kept; the last id it returned)."""
        snapshot, after = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        if not isinstance(snapshot, int) or not isinstance(after, str):
            raise ValueError(token)
        kept = self._listings.get(snapshot)
        if kept is None or time.monotonic() - kept[0] > _LISTING_KEPT_FOR:
            return None, after
        return snapshot, after

    def _remember_listing(self, items: list[dict[str, Any]]) -> int:
        """Keep what a first page saw for the pages after it (one moto listing per listing,
        as EFS pages server side; moto has no pagination, so each page would list it all)."""
        self._listing_number += 1
        self._listings[self._listing_number] = (time.monotonic(), items)
        while len(self._listings) > _LISTINGS_KEPT:
            del self._listings[next(iter(self._listings))]
        return self._listing_number

    async def _fetch_listing(self, file_system_id: str, headers: dict[str, str]
                             ) -> tuple[int, dict[str, str], bytes]:
        """moto's DescribeAccessPoints, tried again when it fails with a 5xx: moto's listing
        is not safe against concurrent creates ("dictionary changed size during iteration"),
        a failure EFS itself never shows."""
        query = f"?FileSystemId={file_system_id}" if file_system_id else ""
        for attempt in range(5):
            status, reply_headers, data = await self._upstream(
                "GET", f"{API}/access-points{query}", headers)
            if status < 500:
                break
            await asyncio.sleep(0.01 * (attempt + 1))
        return status, reply_headers, data

    async def _delete_access_point(self, request: web.Request) -> web.Response:
        headers = self._forward_headers(request)
        access_point_id = request.path.rsplit("/", 1)[-1]
        # An access point the proxy has indexed needs no look-up in moto first (the proxy's
        # own cost, kept small: it is the test bed's, not the driver's).
        found = await self._existing(access_point_id)
        if found is None:
            status, _, data = await self._upstream(
                "GET", f"{API}/access-points?AccessPointId={access_point_id}", headers)
            if status == 404:
                return _error(404, "AccessPointNotFound",
                              f"Access point {access_point_id} does not exist.")
            found = (json.loads(data).get("AccessPoints") or [{}])[0] if status == 200 else {}
        index = self._indexes.get(str(found.get("FileSystemId", "")))
        status, reply_headers, data = await self._upstream(
            "DELETE", request.path_qs, headers)
        if status == 200:
            if index is not None:
                index.access_points.pop(access_point_id, None)
            token = str(found.get("ClientToken") or "")
            if token and self._tokens.get(token, ("",))[0] == access_point_id:
                del self._tokens[token]
        return web.Response(status=status, headers=reply_headers, body=data)


# helpers for tests, the demo and the benchmarks -------------------------------------------


@dataclass(frozen=True)
class FileSystemSetup:
    file_system_id: str
    mount_target_ips: dict[str, str]  # availability zone -> mount target IP


def make_file_system(endpoint_url: str, *, zones: Iterable[str] = ("us-east-1a", "us-east-1b"),
                     one_zone: str | None = None, token: str | None = None) -> FileSystemSetup:
    """Create a file system with one mount target per zone (moto needs a VPC and subnets).

    Sync (boto3), so it works from fixtures, scripts and, briefly, from async tests.
    """
    options = {"region_name": REGION, "endpoint_url": endpoint_url,
               "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
               "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
    efs = boto3.client("efs", **options)
    ec2 = boto3.client("ec2", **options)
    extra = {"AvailabilityZoneName": one_zone} if one_zone else {}
    created = efs.create_file_system(CreationToken=token or f"fs-{time.monotonic_ns()}", **extra)
    file_system_id = str(created["FileSystemId"])
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ips: dict[str, str] = {}
    for number, zone in enumerate([one_zone] if one_zone else list(zones)):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{number}.0/24",
                                   AvailabilityZone=zone)["Subnet"]["SubnetId"]
        target = efs.create_mount_target(FileSystemId=file_system_id, SubnetId=subnet)
        ips[zone] = str(target["IpAddress"])
    return FileSystemSetup(file_system_id, ips)
