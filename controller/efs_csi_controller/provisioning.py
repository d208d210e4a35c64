"""The create and delete use cases: one access point per volume, idempotent and race-free.

In a burst a create costs about one EFS call (CreateAccessPoint): the file system's access
points are listed at most every ``--gid-inventory-max-age`` seconds and kept current in
``GidAllocator`` (see there for the other writers it allows for), which also answers "does
this client token already have an access point?" for retried calls. An access point found
that way is confirmed with EFS before it is answered (another writer may have deleted it).
Everything that can be checked without AWS (parameters, root path, tags, secrets) is checked
before the first call.

Client tokens: a volume's token is its name (its SHA-256 when longer than EFS's 64
characters). With ``reuseAccessPoint`` it is ``<pvc namespace>/<pvc name>`` (hashed alike),
so equal PVC names in two namespaces never share an access point; an access point the
reference driver made for the same PVC (its token: the SHA-256 of the PVC name alone) is
adopted when it fits the StorageClass, so users moving over keep their data.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from efs_csi.cloud import (
    AccessPoint,
    AccessPointAlreadyExistsError,
    AccessPointRequest,
    Cloud,
    CreationInfo,
    PosixUser,
)
from efs_csi.contract.volume_context import VolumeContext, write_volume_context
from efs_csi.contract.volume_id import VolumeHandle, is_file_system_id, parse_volume_id
from efs_csi.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    shown,
)
from efs_csi.kube import PersistentVolumeInfo
from efs_csi.logging import get_logger
from efs_csi_controller import paths
from efs_csi_controller.cross_account import CloudSelector, mount_target_addresses, parse_secrets
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.inflight import OperationKeys
from efs_csi_controller.ownership import NO_API, PvEvidence, ownership_refusal, pv_name_of
from efs_csi_controller.params import (
    DEFAULT_SUB_PATH_PATTERN,
    FileSystemSource,
    ProvisionParams,
    parse_parameters,
)
from efs_csi_controller.root_dir import RootDirectoryRemover, refusal
from efs_csi_controller.shared_roots import conflicting_access_point, normalise
from efs_csi_controller.tags import (
    CAPACITY_TAG,
    CLUSTER_TAG,
    LEGACY_CLUSTER_ID,
    PVC_NAMESPACE_TAG,
    access_point_tags,
    tag_value,
)

_log = get_logger("controller.provisioning")

MAX_CLIENT_TOKEN = 64


# Access point states in which it is as good as gone: a new one is made instead.
_GONE_STATES = frozenset({"deleting", "deleted"})


def client_token(text: str) -> str:
    """EFS allows 64 characters: longer names are replaced by their SHA-256."""
    if len(text) <= MAX_CLIENT_TOKEN:
        return text
    return hashlib.sha256(text.encode()).hexdigest()


def kind_parameter(kind: str) -> str:
    return "fileSystemIdConfigRef" if kind == "ConfigMap" else "fileSystemIdSecretRef"


def reference_reuse_token(pvc_name: str) -> str:
    """The reference driver's token for ``reuseAccessPoint``: SHA-256 of the PVC name alone."""
    return hashlib.sha256(pvc_name.encode()).hexdigest()


class ObjectReader(Protocol):
    """The part of ``efs_csi.kube.Kube`` the controller uses (fileSystemId references, and the
    PV an access point was made for before its directory is deleted)."""

    async def read_config_map_key(self, namespace: str, name: str, key: str) -> str: ...

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str: ...

    async def read_persistent_volume(self, name: str) -> PersistentVolumeInfo: ...


@dataclass(frozen=True)
class CreateRequest:
    name: str
    capacity_bytes: int
    parameters: Mapping[str, str]
    secrets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreatedVolume:
    volume_id: str
    capacity_bytes: int
    context: dict[str, str]
    zone: str | None = None


@dataclass(frozen=True)
class _Plan:
    """A validated create, before any AWS call."""

    params: ProvisionParams
    root_path: str
    token: str
    tags: dict[str, str]
    # Tokens of older schemes whose access point this create adopts instead of making one.
    adoptable_tokens: tuple[str, ...] = ()


class Provisioner:
    def __init__(self, *, clouds: CloudSelector, allocator: GidAllocator, kube: ObjectReader | None,
                 extra_tags: Mapping[str, str], root_dirs: RootDirectoryRemover | None,
                 cluster_id: str = LEGACY_CLUSTER_ID, allow_shared_roots: bool = False) -> None:
        self._cluster_id = cluster_id
        self._allow_shared_roots = allow_shared_roots
        # Roots of creates under way, per file system: (root, PVC namespace, client token).
        self._roots_in_flight: dict[str, list[tuple[str, str | None, str]]] = {}
        # Access points deleted whose directory removal has not finished (DeleteVolume's retry
        # finishes it: the access point is gone by then, so EFS can no longer describe it).
        self._unfinished_removals: dict[str, AccessPoint] = {}
        self._clouds = clouds
        self._allocator = allocator
        self._kube = kube
        self._extra_tags = dict(extra_tags)
        self._root_dirs = root_dirs
        self._keys = OperationKeys()
        # Capacities of volumes made by this process, for when tagging is disabled.
        self._capacities: dict[tuple[str, str], int] = {}
        self._zones: dict[str, str | None] = {}

    def _plan(self, request: CreateRequest) -> _Plan:
        params = parse_parameters(request.parameters)
        # The CSI volume name is the PV name: use it when the provisioner did not pass one.
        params = replace(params, metadata=replace(
            params.metadata, pv_name=params.metadata.pv_name or request.name))
        root = paths.root_path(
            base_path=params.base_path, sub_path_pattern=params.sub_path_pattern,
            metadata=params.metadata, ensure_unique_directory=params.ensure_unique_directory,
            volume_name=request.name,
            shorten_to_fit=params.sub_path_pattern == DEFAULT_SUB_PATH_PATTERN)
        if params.reuse_access_point:
            meta = params.metadata
            if not meta.pvc_name or not meta.pvc_namespace:
                raise InvalidArgument("parameter reuseAccessPoint=true needs the PVC name and "
                                      "namespace (run csi-provisioner with "
                                      "--extra-create-metadata)")
            # The namespace is part of the token: equal PVC names in two namespaces must
            # never share an access point.
            token = client_token(f"{meta.pvc_namespace}/{meta.pvc_name}")
            adoptable: tuple[str, ...] = (reference_reuse_token(meta.pvc_name),)
        else:
            token, adoptable = client_token(request.name), ()
        tags = access_point_tags(enabled=params.enable_tagging, extra=self._extra_tags,
                                 metadata=params.metadata, capacity_bytes=request.capacity_bytes,
                                 base_path=paths.normalised_base_path(params.base_path),
                                 cluster_id=self._cluster_id)
        return _Plan(params, root, token, tags, adoptable)

    async def create(self, request: CreateRequest) -> CreatedVolume:
        plan = self._plan(request)
        cross_account = parse_secrets(request.secrets)
        with self._keys.hold(f"name:{request.name}", f"volume {shown(request.name)}"):
            cloud = await self._clouds.select(cross_account)
            fs_id = await self._file_system_id(plan.params.file_system)
            async with self._root_claim(cloud, fs_id, plan):
                access_point = await self._access_point(cloud, fs_id, plan, request)
            context = VolumeContext(capacity_bytes=request.capacity_bytes)
            if cross_account.mount_target_addresses:
                targets = await cloud.mount_targets(fs_id)
                context = replace(mount_target_addresses(targets, fs_id, plan.params.az),
                                  capacity_bytes=request.capacity_bytes)
            zone = None
            if plan.params.enforce_zone_affinity:
                zone = await self._zone(cloud, fs_id)
        handle = VolumeHandle(fs_id, "", access_point.access_point_id)
        return CreatedVolume(str(handle), request.capacity_bytes, write_volume_context(context),
                             zone)

    @contextlib.asynccontextmanager
    async def _root_claim(self, cloud: Cloud, fs_id: str, plan: _Plan) -> AsyncIterator[None]:
        """Refuse a root that overlaps a live access point of another namespace (see
        ``shared_roots``), then hold the root for the create, so that a concurrent create
        of another namespace sees it before its access point is listed."""
        namespace = plan.params.metadata.pvc_namespace
        own_tokens = (plan.token, *plan.adoptable_tokens)
        if not self._allow_shared_roots:
            live = list(await self._allocator.known(cloud, fs_id))
            in_flight = [AccessPoint(access_point_id="(being created)", file_system_id=fs_id,
                                     root_path=root, client_token=token,
                                     tags={CLUSTER_TAG: self._cluster_id,
                                           **({PVC_NAMESPACE_TAG: tag_value(other)}
                                              if other else {})})
                         for root, other, token in self._roots_in_flight.get(fs_id, ())]
            conflict = conflicting_access_point(plan.root_path, namespace, live + in_flight,
                                                own_tokens)
            if conflict is not None:
                owner = (f"access point {conflict.access_point_id}" if conflict in live
                         else "an access point being created")
                raise FailedPrecondition(
                    f"root directory {plan.root_path} on {fs_id} overlaps {conflict.root_path}, "
                    f"the root of {owner} for a volume in another namespace"
                    f"{'' if namespace else ' (or of unknown namespace)'}: "
                    "volumes of two namespaces never share a directory unless the controller "
                    "runs with --allow-shared-root-directories (Helm: "
                    "controller.allowSharedRootDirectories=true); use a subPathPattern with "
                    "${.PVC.namespace} or ensureUniqueDirectory")
        claim = (str(normalise(plan.root_path)), namespace, plan.token)
        self._roots_in_flight.setdefault(fs_id, []).append(claim)
        try:
            yield
        finally:
            claims = self._roots_in_flight[fs_id]
            claims.remove(claim)
            if not claims:
                del self._roots_in_flight[fs_id]

    async def _file_system_id(self, source: FileSystemSource) -> str:
        if source.file_system_id is not None:
            return source.file_system_id
        if self._kube is None:
            raise InvalidArgument("fileSystemIdConfigRef/fileSystemIdSecretRef need Kubernetes "
                                  "API access, which this controller does not have")
        try:
            if source.config_map is not None:
                ref, kind = source.config_map, "fileSystemIdConfigRef"
                value = await self._kube.read_config_map_key(ref.namespace, ref.name, ref.key)
            else:
                assert source.secret is not None
                ref, kind = source.secret, "fileSystemIdSecretRef"
                value = await self._kube.read_secret_key(ref.namespace, ref.name, ref.key)
        except PermissionDenied as exc:
            kind = "ConfigMap" if source.config_map is not None else "Secret"
            raise PermissionDenied(
                f"{exc.message}: the controller's ServiceAccount needs get on {kind} "
                f"{ref.namespace}/{ref.name} to resolve {kind_parameter(kind)}; with the Helm "
                "chart, list it in controller.fileSystemIdReferences "
                f"({{kind: {kind}, namespace: {ref.namespace}, name: {ref.name}}})") from None
        value = value.strip()
        if not is_file_system_id(value):
            raise InvalidArgument(f"parameter {kind}: {ref.namespace}/{ref.name} key {ref.key} "
                                  "does not hold a file system id (fs-...)")
        return value

    async def _zone(self, cloud: Cloud, fs_id: str) -> str | None:
        if fs_id not in self._zones:
            self._zones[fs_id] = (await cloud.describe_file_system(fs_id)).availability_zone_name
        return self._zones[fs_id]

    async def _access_point(self, cloud: Cloud, fs_id: str, plan: _Plan,
                            request: CreateRequest) -> AccessPoint:
        started = self._allocator.now()
        existing = await self._existing(cloud, fs_id, plan, request, started)
        if existing is not None:
            return existing
        params = plan.params
        reservation = await self._allocator.reserve(cloud, fs_id, params.gid_range, params.gid,
                                                    as_of=started)
        gid = params.gid if params.gid is not None else reservation.gid
        assert gid is not None
        uid = params.uid if params.uid is not None else gid
        ap_request = AccessPointRequest(
            file_system_id=fs_id, client_token=plan.token, root_path=plan.root_path,
            posix_user=PosixUser(uid, gid),
            creation_info=CreationInfo(uid, gid, params.directory_perms), tags=plan.tags)
        try:
            created = await cloud.create_access_point(ap_request)
        except AlreadyExists as exc:
            self._allocator.release(reservation)
            return await self._resolve_conflict(cloud, fs_id, plan, request, exc)
        except BaseException:
            self._allocator.release(reservation)
            raise
        self._allocator.commit(reservation, created)
        self._capacities[(fs_id, plan.token)] = request.capacity_bytes
        return created

    async def _existing(self, cloud: Cloud, fs_id: str, plan: _Plan, request: CreateRequest,
                        started: float) -> AccessPoint | None:
        """The access point this create must answer with, confirmed to exist, if any."""
        for token in (plan.token, *plan.adoptable_tokens):
            found = await self._allocator.find_by_token(cloud, fs_id, token, as_of=started)
            existing = None if found is None else await self._confirmed(cloud, found)
            if existing is None:
                continue
            if token == plan.token:
                self._check_matches(existing, plan, request)
                return existing
            # Made by the reference driver for a PVC of this name: adopted only when it fits
            # this StorageClass (its token says nothing of the namespace or the class).
            problem = self._mismatch(existing, plan, request)
            if problem is None:
                _log.info("adopted an access point the reference driver made for this PVC",
                          access_point_id=existing.access_point_id, name=request.name)
                return existing
            _log.info("not adopting the reference driver's access point for this PVC name",
                      access_point_id=existing.access_point_id, reason=problem)
        elsewhere = self._allocator.find_token_elsewhere(fs_id, plan.token)
        if elsewhere is not None and await self._confirmed(cloud, elsewhere) is not None:
            raise self._on_other_file_system(elsewhere, fs_id, request)
        return None

    async def _confirmed(self, cloud: Cloud, known: AccessPoint) -> AccessPoint | None:
        """``known`` as EFS shows it now; None (and forgotten) when it is gone."""
        try:
            current = await cloud.describe_access_point(known.access_point_id)
        except NotFound:
            current = None
        if current is None or current.life_cycle_state in _GONE_STATES:
            self._allocator.forget(known.file_system_id, known.access_point_id)
            _log.info("access point from the inventory is gone; making a new one",
                      access_point_id=known.access_point_id)
            return None
        self._allocator.remember(current)
        return current

    @staticmethod
    def _on_other_file_system(existing: AccessPoint, fs_id: str,
                              request: CreateRequest) -> AlreadyExists:
        return AlreadyExists(
            f"volume {shown(request.name)} already exists on file system "
            f"{existing.file_system_id} (access point {existing.access_point_id}), not on "
            f"{fs_id}: EFS client tokens are unique per account and region, so one volume "
            "name cannot have access points on two file systems")

    async def _resolve_conflict(self, cloud: Cloud, fs_id: str, plan: _Plan,
                                request: CreateRequest, conflict: AlreadyExists) -> AccessPoint:
        """The token is taken by an access point we did not know: look it up and compare."""
        existing: AccessPoint | None = None
        named = getattr(conflict, "access_point_id", None)
        if isinstance(conflict, AccessPointAlreadyExistsError) and named:
            # EFS named it: one describe instead of a full re-listing.
            with contextlib.suppress(NotFound):
                existing = await cloud.describe_access_point(named)
        if existing is not None and existing.file_system_id != fs_id:
            raise self._on_other_file_system(existing, fs_id, request)
        if existing is not None:
            self._allocator.remember(existing)
        else:
            # Our inventory missed something: list the file system again and search it.
            self._allocator.mark_stale(fs_id)
            existing = await self._allocator.find_by_token(cloud, fs_id, plan.token)
        if existing is None:
            elsewhere = self._allocator.find_token_elsewhere(fs_id, plan.token)
            if elsewhere is not None:
                raise self._on_other_file_system(elsewhere, fs_id, request)
            raise AlreadyExists(
                f"volume {shown(request.name)}: EFS reports its client token {plan.token!r} "
                f"in use, but no access point on {fs_id} carries it: EFS client tokens are "
                "unique per account and region, so an access point on another file system "
                "(made for the same volume name) most likely holds it")
        self._check_matches(existing, plan, request)
        return existing

    def _check_matches(self, existing: AccessPoint, plan: _Plan, request: CreateRequest) -> None:
        problem = self._mismatch(existing, plan, request)
        if problem is not None:
            what = ("access point for this PVC" if plan.params.reuse_access_point
                    else f"volume {shown(request.name)}")
            raise AlreadyExists(f"{what} exists as {existing.access_point_id} but {problem}")

    def _mismatch(self, existing: AccessPoint, plan: _Plan,
                  request: CreateRequest) -> str | None:
        params = plan.params
        user = existing.posix_user
        if user is None:
            return "it has no POSIX user"
        if params.gid is not None and user.gid != params.gid:
            return f"its gid is {user.gid}, not {params.gid}"
        if params.gid is None and not params.gid_range.start <= user.gid <= params.gid_range.end:
            return f"its gid {user.gid} is outside {params.gid_range}"
        expected_uid = params.uid if params.uid is not None else user.gid
        if user.uid != expected_uid:
            return f"its uid is {user.uid}, not {expected_uid}"
        namespace = existing.tags.get(PVC_NAMESPACE_TAG)
        if (params.reuse_access_point and namespace is not None
                and namespace != tag_value(params.metadata.pvc_namespace or "")):
            return f"it belongs to a PVC in namespace {namespace}"
        if params.reuse_access_point:
            base = paths.normalised_base_path(params.base_path)
            root = existing.root_path.rstrip("/") or "/"
            if base not in ("/", root) and not root.startswith(base + "/"):
                return f"its path {existing.root_path} is outside basePath {base}"
            return None
        if existing.root_path.rstrip("/") != plan.root_path.rstrip("/"):
            return f"its path is {existing.root_path}, not {plan.root_path}"
        info = existing.creation_info
        if info is not None and int(info.permissions, 8) != int(params.directory_perms, 8):
            return (f"its directory was created with permissions {info.permissions}, not "
                    f"{params.directory_perms}")
        recorded = existing.tags.get(CAPACITY_TAG)
        capacity = (int(recorded) if recorded and recorded.isdigit()
                    else self._capacities.get((existing.file_system_id, plan.token)))
        if capacity is not None and capacity != request.capacity_bytes:
            return f"it was created with capacity {capacity} bytes, not {request.capacity_bytes}"
        return None

    async def delete(self, volume_id: str, secrets: Mapping[str, str]) -> None:
        """Idempotent: malformed, static, unknown and already-deleted volumes all succeed
        (but for a directory removal this process began and has not finished)."""
        try:
            handle = parse_volume_id(volume_id)
        except InvalidArgument:
            return  # nothing we could have created
        if not handle.access_point_id:
            return  # a static volume: the file system is not ours to delete
        cross_account = parse_secrets(secrets)
        with self._keys.hold(f"id:{handle.access_point_id}", f"volume {shown(volume_id)}"):
            cloud = await self._clouds.select(cross_account)
            fs_id, ap_id = handle.file_system_id, handle.access_point_id
            # What the delete needs of a known access point never changes, so a known one is
            # deleted without asking EFS first, however old the listing (one call per delete);
            # if another writer deleted it meanwhile, EFS answers NotFound: done.
            access_point = self._allocator.remembered(fs_id, ap_id)
            unfinished = self._unfinished_removals.get(ap_id)
            if unfinished is not None and unfinished.file_system_id == fs_id:
                await self._delete_with_root_dir(cloud, unfinished)
                return
            if access_point is None:
                try:
                    access_point = await cloud.describe_access_point(ap_id)
                except NotFound:
                    self._allocator.forget(fs_id, ap_id)
                    return
            if access_point.file_system_id != fs_id:
                raise InvalidArgument(f"volume_id {shown(volume_id)}: access point {ap_id} belongs "
                                      f"to {access_point.file_system_id}, not {fs_id}")
            if self._root_dirs is None:
                with contextlib.suppress(NotFound):
                    await cloud.delete_access_point(ap_id)
                self._forget(access_point)
                return
            await self._delete_with_root_dir(cloud, access_point)

    def _forget(self, access_point: AccessPoint) -> None:
        self._allocator.forget(access_point.file_system_id, access_point.access_point_id)
        self._capacities.pop((access_point.file_system_id, access_point.client_token), None)

    async def _delete_with_root_dir(self, cloud: Cloud, access_point: AccessPoint) -> None:
        """--delete-access-point-root-dir: decide on the directory while the access point and
        its PV are there to prove ownership (``ownership``) and no guard fires (``root_dir``),
        delete the access point (IAM checks the cluster tag), and only once that succeeded
        remove the directory. A removal that fails or runs out of time is finished by the
        retry of DeleteVolume, which csi-provisioner makes until it succeeds."""
        fs_id, ap_id = access_point.file_system_id, access_point.access_point_id
        unfinished = self._unfinished_removals.get(ap_id)
        if unfinished is not None:
            await self._remove_root_dir(cloud, unfinished)
            return
        keep = ownership_refusal(access_point, self._cluster_id,
                                 await self._pv_evidence(access_point))
        if keep is None:
            keep = refusal(access_point, await self._allocator.known(cloud, fs_id))
        try:
            await cloud.delete_access_point(ap_id)
        except NotFound:
            keep = keep or "the access point was deleted meanwhile, not by this call"
        self._forget(access_point)
        if keep is not None:
            _log.warning("kept access point directory", access_point_id=ap_id,
                         root_path=access_point.root_path, reason=keep)
            return
        self._unfinished_removals[ap_id] = access_point
        await self._remove_root_dir(cloud, access_point)

    async def _remove_root_dir(self, cloud: Cloud, access_point: AccessPoint) -> None:
        assert self._root_dirs is not None
        live = await self._allocator.known(cloud, access_point.file_system_id)
        await self._root_dirs.remove(access_point, live)
        del self._unfinished_removals[access_point.access_point_id]

    async def _pv_evidence(self, access_point: AccessPoint) -> PvEvidence:
        """What the Kubernetes API says of the PV the access point was made for."""
        pv_name = pv_name_of(access_point)
        if self._kube is None:
            return NO_API
        if pv_name is None:
            return PvEvidence(available=True)
        try:
            return PvEvidence(available=True,
                              volume=await self._kube.read_persistent_volume(pv_name))
        except NotFound:
            return PvEvidence(available=True)
        except PermissionDenied as exc:
            raise PermissionDenied(
                f"{exc.message}: --delete-access-point-root-dir reads the PV an access point "
                "was made for before deleting its directory; the controller's ServiceAccount "
                "needs get on persistentvolumes (the Helm chart grants it)") from None

    async def check_exists(self, volume_id: str, secrets: Mapping[str, str]) -> VolumeHandle:
        """NotFound unless the volume's access point (or file system) exists."""
        try:
            handle = parse_volume_id(volume_id)
        except InvalidArgument as exc:
            raise NotFound(f"volume {shown(volume_id)} does not exist: {exc.message}") from None
        cloud = await self._clouds.select(parse_secrets(secrets))
        if handle.access_point_id:
            if self._allocator.lookup(handle.file_system_id, handle.access_point_id) is None:
                access_point = await cloud.describe_access_point(handle.access_point_id)
                if access_point.file_system_id != handle.file_system_id:
                    raise NotFound(f"volume {shown(volume_id)}: access point "
                                   f"{handle.access_point_id} is not on "
                                   f"{handle.file_system_id}")
        else:
            await cloud.describe_file_system(handle.file_system_id)
        return handle
