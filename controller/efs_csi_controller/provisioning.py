"""The create and delete use cases: one access point per volume, idempotent and race-free.

In a burst a create costs about one EFS call (CreateAccessPoint): the file system's access
points are listed when ``GidAllocator`` needs a listing (before a pick in a narrow GID range
whose listing is too old; after creates, to settle their GIDs, one listing shared by every
create that completed before it) and kept current there, which also answers "does this client
token already have an access point?" for retried calls. An access point found that way is
confirmed with EFS before it is answered (another writer may have deleted it). Everything that
can be checked without AWS (parameters, root path, tags, secrets) is checked before the first
call.

No shared GID: an access point whose GID was picked here is answered only once it is settled
(``GidAllocator.settle``): when another access point holds its GID, ours may have to yield. The
volume's next access point is then made with another GID, under the next of its client tokens,
and the one given up deleted, at most ``MAX_YIELDS`` times. In that order, a retry (after a
restart, say) always finds the newest under its token, never needs the token of a deleted access
point (what EFS answers to one is not documented), and deletes any older one left behind.

What a create makes is decided first, without I/O, by ``efs_csi_controller.plan`` (the
parameters, the root directory, the client tokens, the tags): the plan travels alone through
the methods below, which do what it asks of EFS, the GID allocator and Kubernetes.

With ``reuseAccessPoint``, the reference driver's access point for the PVC (its token says
nothing of the namespace) is adopted only with proof that it is this claim's (its PV-name tag
names the PV being made, or the StorageClass's ``referenceAccessPointsNamespace`` names this
PVC's namespace: ``plan.no_proof``), never by another namespace, and, so that deleting this PV
never deletes what it did not create, by making this PVC's own access point on its directory
and POSIX identity (a *mirror*), looked up in a listing made after the create began.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from efs_csi.cloud import (
    GONE_STATES,
    AccessPoint,
    AccessPointAlreadyExistsError,
    AccessPointRequest,
    Cloud,
    Clouds,
    CreationInfo,
    PosixUser,
)
from efs_csi.contract.volume_context import VolumeContext, write_volume_context
from efs_csi.contract.volume_id import VolumeHandle, is_file_system_id, parse_volume_id
from efs_csi.errors import (
    Aborted,
    AccessPointLimitReached,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    shown,
)
from efs_csi.kube import PersistentVolumeInfo
from efs_csi.logging import get_logger
from efs_csi_controller.cross_account import mount_target_addresses, parse_secrets
from efs_csi_controller.gid import GidAllocator, KnownForCreate
from efs_csi_controller.inflight import KeysInFlight
from efs_csi_controller.ownership import (
    NO_API,
    PvEvidence,
    deletion_refusal,
    ownership_refusal,
    pv_name_of,
)
from efs_csi_controller.params import FileSystemSource
from efs_csi_controller.plan import (
    MAX_YIELDS,
    Plan,
    mismatch,
    no_proof,
    plan_create,
    settles_gids,
)
from efs_csi_controller.root_dir import RootDirectoryRemover, refusal
from efs_csi_controller.shared_roots import (
    conflicting_access_point,
    normalise,
    overlaps_with,
)
from efs_csi_controller.tags import (
    CLUSTER_TAG,
    LEGACY_CLUSTER_ID,
    PVC_NAMESPACE_TAG,
    tag_value,
)

_log = get_logger("controller.provisioning")

# Access point states in which it is as good as gone: a new one is made instead.
_GONE_STATES = GONE_STATES


def kind_parameter(kind: str) -> str:
    return "fileSystemIdConfigRef" if kind == "ConfigMap" else "fileSystemIdSecretRef"


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


class Provisioner:
    def __init__(self, *, clouds: Clouds, allocator: GidAllocator, kube: ObjectReader | None,
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
        self._keys = KeysInFlight()
        # Capacities of volumes made by this process, for when tagging is disabled.
        self._capacities: dict[tuple[str, str], int] = {}
        self._zones: dict[str, str | None] = {}

    async def create(self, request: CreateRequest) -> CreatedVolume:
        plan = plan_create(request.name, request.capacity_bytes, request.parameters,
                           extra_tags=self._extra_tags, cluster_id=self._cluster_id)
        cross_account = parse_secrets(request.secrets)
        with self._keys.hold(f"name:{plan.name}", f"volume {shown(plan.name)}"):
            cloud = await self._clouds.cloud_for(cross_account.role_arn,
                                                 cross_account.external_id)
            fs_id = await self._file_system_id(plan.params.file_system)
            picking = plan.params.gid is None
            # Adoption looks for what the reference driver made in a listing made after this
            # create began; a pick in a narrow GID range needs a listing recent enough, and so
            # does the shared-root check of a create with the StorageClass's gid (a picked GID
            # is checked again against the listing that settles it).
            known = await self._allocator.known_for_create(
                cloud, fs_id, plan.tokens, plan.root_path,
                plan.params.gid_range if picking else None,
                current=plan.reference_token is not None,
                listed_when_old=not picking and not self._allow_shared_roots)
            with self._root_claim(fs_id, plan, known):
                access_point = await self._access_point(cloud, fs_id, plan, known)
            context = VolumeContext(capacity_bytes=plan.capacity_bytes)
            if cross_account.mount_target_addresses:
                targets = await cloud.mount_targets(fs_id)
                context = replace(mount_target_addresses(targets, fs_id, plan.params.az),
                                  capacity_bytes=plan.capacity_bytes)
            zone = None
            if plan.params.enforce_zone_affinity:
                zone = await self._zone(cloud, fs_id)
        handle = VolumeHandle(fs_id, "", access_point.access_point_id)
        return CreatedVolume(str(handle), plan.capacity_bytes, write_volume_context(context),
                             zone)

    @contextlib.contextmanager
    def _root_claim(self, fs_id: str, plan: Plan, known: KnownForCreate) -> Iterator[None]:
        """Refuse a root that overlaps a live access point of another namespace (see
        ``shared_roots``), then hold the root for the create, so that a concurrent create
        of another namespace sees it before its access point is listed. A create whose GID
        is picked is checked again after it, against the listing that settles its GID
        (``_check_shared_root``), so it needs no listing of its own: it checks what is
        known; for a create with the StorageClass's gid, ``known`` comes from a listing
        younger than the inventory's bound. No await between the check and the claim."""
        namespace = plan.params.metadata.pvc_namespace
        if not self._allow_shared_roots:
            # Only the known access points whose root overlaps can conflict (a few lookups).
            live = list(known.overlapping)
            overlaps = overlaps_with(plan.root_path)
            in_flight = [AccessPoint(access_point_id="(being created)", file_system_id=fs_id,
                                     root_path=root, client_token=token,
                                     tags={CLUSTER_TAG: self._cluster_id,
                                           **({PVC_NAMESPACE_TAG: tag_value(other)}
                                              if other else {})})
                         for root, other, token in self._roots_in_flight.get(fs_id, ())
                         if overlaps(root)]
            conflict = conflicting_access_point(
                plan.root_path, namespace, live + in_flight,
                self._own_tokens(plan, self._allocator.known_with_token(fs_id,
                                                                        plan.reference_token)
                                 if plan.reference_token is not None else []))
            if conflict is not None:
                raise self._shared_root_refused(fs_id, plan.root_path, namespace, conflict,
                                                live=conflict in live)
        claim = (str(normalise(plan.root_path)), namespace, plan.tokens[0])
        self._roots_in_flight.setdefault(fs_id, []).append(claim)
        try:
            yield
        finally:
            claims = self._roots_in_flight[fs_id]
            claims.remove(claim)
            if not claims:
                del self._roots_in_flight[fs_id]

    def _own_tokens(self, plan: Plan, live: list[AccessPoint]) -> tuple[str, ...]:
        """This volume's own access points never conflict, nor does the reference driver's
        for this claim when it is provably this claim's (then it is adopted, see _adopt)."""
        return plan.tokens + tuple(
            other.client_token for other in live
            if plan.reference_token is not None and other.client_token == plan.reference_token
            and no_proof(other, plan) is None)

    @staticmethod
    def _shared_root_refused(fs_id: str, root_path: str, namespace: str | None,
                             conflict: AccessPoint, *, live: bool) -> FailedPrecondition:
        owner = (f"access point {conflict.access_point_id}" if live
                 else "an access point being created")
        return FailedPrecondition(
            f"root directory {root_path} on {fs_id} overlaps {conflict.root_path}, "
            f"the root of {owner} for a volume in another namespace"
            f"{'' if namespace else ' (or of unknown namespace)'}: "
            "volumes of two namespaces never share a directory unless the controller "
            "runs with --allow-shared-root-directories (Helm: "
            "controller.allowSharedRootDirectories=true); use a subPathPattern with "
            "${.PVC.namespace} or ensureUniqueDirectory")

    async def _check_shared_root(self, cloud: Cloud, plan: Plan, access_point: AccessPoint,
                                 live: list[AccessPoint]) -> None:
        """Right after ``settle`` listed the file system (``live``: what was made before our
        create with a root that overlaps ours): an overlapping root of another namespace that
        the check before the create could not see (another controller's, made meanwhile)
        gives ours up, FAILED_PRECONDITION."""
        if self._allow_shared_roots:
            return
        fs_id = access_point.file_system_id
        namespace = plan.params.metadata.pvc_namespace
        # No adoption happened on this path (a mirror is never settled): the reference
        # driver's access point is no exception here.
        conflict = conflicting_access_point(access_point.root_path, namespace, live,
                                            plan.tokens)
        if conflict is None:
            return
        await self._give_up(cloud, access_point)
        raise self._shared_root_refused(fs_id, access_point.root_path, namespace, conflict,
                                        live=True)

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

    async def _access_point(self, cloud: Cloud, fs_id: str, plan: Plan,
                            known: KnownForCreate) -> AccessPoint:
        picking = plan.params.gid is None
        found = await self._existing(cloud, fs_id, plan, known)
        if found is not None:
            access_point, yields = found
            if not picking or self._mirrors_reference(access_point, plan):
                return access_point
        else:
            adopted = await self._adopt(cloud, fs_id, plan)
            if adopted is not None:
                return adopted
            access_point, yields = await self._create(cloud, fs_id, plan, 0), 0
            if not picking:
                return access_point  # a StorageClass gid: shared on purpose
        return await self._settled(cloud, fs_id, plan, access_point, yields=yields)

    async def _create(self, cloud: Cloud, fs_id: str, plan: Plan, yields: int, *,
                      like: AccessPoint | None = None) -> AccessPoint:
        """A new access point for this volume, under its token after ``yields`` yields; with
        ``like``, on that access point's directory and POSIX identity (adoption)."""
        params = plan.params
        token = plan.tokens[yields]
        fixed = params.gid if like is None or like.posix_user is None else like.posix_user.gid
        reservation = await self._allocator.reserve(cloud, fs_id, params.gid_range, fixed)
        gid = fixed if fixed is not None else reservation.gid
        assert gid is not None
        if like is not None and like.posix_user is not None:
            posix_user, root_path = like.posix_user, like.root_path
            creation_info = like.creation_info or CreationInfo(
                posix_user.uid, posix_user.gid, params.directory_perms)
        else:
            uid = params.uid if params.uid is not None else gid
            posix_user, root_path = PosixUser(uid, gid), plan.root_path
            creation_info = CreationInfo(uid, gid, params.directory_perms)
        ap_request = AccessPointRequest(
            file_system_id=fs_id, client_token=token, root_path=root_path,
            posix_user=posix_user, creation_info=creation_info, tags=plan.tags)
        try:
            created = await cloud.create_access_point(ap_request)
        except AlreadyExists as exc:
            self._allocator.release(reservation)
            return await self._resolve_conflict(cloud, fs_id, plan, exc, token=token)
        except BaseException:
            self._allocator.release(reservation)
            raise
        self._allocator.commit(reservation, created)
        self._capacities[(fs_id, token)] = plan.capacity_bytes
        return created

    async def _settled(self, cloud: Cloud, fs_id: str, plan: Plan, access_point: AccessPoint,
                       *, yields: int) -> AccessPoint:
        """``access_point`` once no other access point holds its GID; when one does and ours
        must yield, the volume's next access point is made (with another GID) and then this
        one deleted: so a retry never needs the token of a deleted access point."""
        while True:
            settlement = await self._allocator.settle(cloud, access_point, settles_gids)
            # What the settling listing showed (the duplicates given up below carry our own
            # token, which the shared-root check ignores).
            kept = await self._without_duplicates(cloud, access_point,
                                                  settlement.duplicates)
            if kept is not access_point:
                access_point = kept  # the same token: the same yields
                continue  # the survivor is settled in turn
            if settlement.kept:
                await self._check_shared_root(cloud, plan, access_point,
                                              list(settlement.overlapping))
                return access_point
            assert access_point.posix_user is not None
            gid = access_point.posix_user.gid
            rivals = [rival.access_point_id for rival in settlement.rivals]
            _log.warning("GID held by another access point: giving it up for another",
                         file_system_id=fs_id, access_point_id=access_point.access_point_id,
                         gid=gid, held_by=rivals, name=plan.name)
            if yields >= MAX_YIELDS:
                with contextlib.suppress(Exception):  # the first failure is the answer
                    await self._give_up(cloud, access_point)
                raise Aborted(
                    f"volume {shown(plan.name)}: other writers on {fs_id} took each of the "
                    f"{MAX_YIELDS + 1} GIDs picked for it (last {gid}, held by "
                    f"{', '.join(rivals)}); retry later")
            access_point = await self._replace(cloud, fs_id, plan, access_point, yields + 1)
            yields += 1

    async def _replace(self, cloud: Cloud, fs_id: str, plan: Plan, yielded: AccessPoint,
                       yields: int) -> AccessPoint:
        """The volume's next access point (under its token after ``yields`` yields), then
        ``yielded`` deleted: so a retry never needs the token of a deleted access point. At the
        file system's access point limit the replacement has no slot while ``yielded`` holds
        one, so there ``yielded`` goes first (as after any failure, a retry then starts over)."""
        try:
            replacement = await self._create(cloud, fs_id, plan, yields)
        except AccessPointLimitReached:
            _log.info("access point limit reached while yielding: deleting ours first",
                      file_system_id=fs_id, access_point_id=yielded.access_point_id,
                      name=plan.name)
            await self._give_up(cloud, yielded)
            return await self._create(cloud, fs_id, plan, yields)
        except BaseException:
            with contextlib.suppress(Exception):  # the first failure is the answer
                await self._give_up(cloud, yielded)
            raise
        await self._give_up(cloud, yielded)
        return replacement

    async def _without_duplicates(self, cloud: Cloud, access_point: AccessPoint,
                                  copies: Sequence[AccessPoint]) -> AccessPoint:
        """Right after ``settle`` listed the file system (``copies``: the others it knows with
        ``access_point``'s very token; a yield's are under other tokens): the one access point
        kept. EFS answers a repeated ClientToken with the access point it made, so this never
        happens there; an EFS-compatible API that makes a new one each time (moto: a leader
        that died mid-create, then its successor's retry) leaves duplicates. Every controller
        keeps the lowest id and deletes the rest, so two of them at once agree, and a dead
        one's leftovers are not left behind."""
        fs_id = access_point.file_system_id
        if not copies:
            return access_point
        survivor, *doomed = sorted([access_point, *copies], key=lambda ap: ap.access_point_id)
        _log.warning("access points duplicated under one volume's client tokens (an EFS API "
                     "that does not honour ClientToken): keeping the lowest id",
                     file_system_id=fs_id, kept=survivor.access_point_id,
                     deleted=[ap.access_point_id for ap in doomed])
        for duplicate in doomed:
            await self._give_up(cloud, duplicate)
        return survivor

    async def _give_up(self, cloud: Cloud, access_point: AccessPoint) -> None:
        """Delete an access point of this volume that was never answered."""
        with contextlib.suppress(NotFound):
            await cloud.delete_access_point(access_point.access_point_id)
        self._allocator.forget(access_point.file_system_id, access_point.access_point_id)

    async def _existing(self, cloud: Cloud, fs_id: str, plan: Plan,
                        tokens: KnownForCreate) -> tuple[AccessPoint, int] | None:
        """The access point this create must answer with (after how many yields it was made),
        confirmed to exist, if any. The volume's access points of fewer yields still known
        (a yield interrupted before it deleted them) were never answered: they are deleted."""
        found: tuple[AccessPoint, int] | None = None
        for yields in range(MAX_YIELDS, -1, -1):
            known = tokens.by_yields[yields]
            if known is None:
                continue
            if found is not None:
                _log.info("deleting an access point this volume gave up",
                          access_point_id=known.access_point_id, name=plan.name)
                await self._give_up(cloud, known)
                continue
            existing = await self._confirmed(cloud, known)
            if existing is not None:
                self._check_matches(existing, plan)
                found = existing, yields
        if found is not None:
            return found
        elsewhere = tokens.elsewhere
        if elsewhere is not None and await self._confirmed(cloud, elsewhere) is not None:
            raise self._on_other_file_system(elsewhere, fs_id, plan)
        return None

    def _mirrors_reference(self, access_point: AccessPoint, plan: Plan) -> bool:
        """Whether ``access_point`` (this PVC's) is the mirror of a live reference driver's
        access point, with which it shares its GID on purpose."""
        if plan.reference_token is None:
            return False
        reference = self._allocator.find_known(access_point.file_system_id,
                                               plan.reference_token)
        return (reference is not None and reference.life_cycle_state not in _GONE_STATES
                and reference.posix_user == access_point.posix_user
                and reference.root_path == access_point.root_path)

    async def _adopt(self, cloud: Cloud, fs_id: str, plan: Plan) -> AccessPoint | None:
        """With reuseAccessPoint, this PVC's access point made on the directory and POSIX
        identity of the one the reference driver made for it, when that one is provably this
        claim's (see the module docstring); None when there is none or no proof."""
        if plan.reference_token is None:
            return None
        known = self._allocator.find_known(fs_id, plan.reference_token)
        reference = None if known is None else await self._confirmed(cloud, known)
        if reference is None:
            return None
        problem = (no_proof(reference, plan) or self._mismatch(reference, plan)
                   or await self._adopted_elsewhere(cloud, reference, plan))
        if problem is not None:
            _log.info("not adopting the reference driver's access point for this PVC name",
                      access_point_id=reference.access_point_id, reason=problem,
                      name=plan.name)
            return None
        mirror = await self._create(cloud, fs_id, plan, 0, like=reference)
        _log.info("adopted the reference driver's access point for this PVC: made this PV's "
                  "own on its directory", access_point_id=mirror.access_point_id,
                  reference_access_point_id=reference.access_point_id, name=plan.name)
        return mirror

    async def _adopted_elsewhere(self, cloud: Cloud, reference: AccessPoint,
                                 plan: Plan) -> str | None:
        """Why ``reference``'s directory must not be adopted because a PVC of another
        namespace already uses it, or None."""
        namespace = tag_value(plan.params.metadata.pvc_namespace or "")
        root = reference.root_path.rstrip("/") or "/"
        # Only an access point whose root overlaps can be on the same directory.
        for other in await self._allocator.known_overlapping_listed(
                cloud, reference.file_system_id, reference.root_path):
            tagged = other.tags.get(PVC_NAMESPACE_TAG)
            if (tagged is not None and tagged != namespace
                    and other.life_cycle_state not in _GONE_STATES
                    and (other.root_path.rstrip("/") or "/") == root):
                return (f"its directory {root} is already adopted by a PVC in namespace "
                        f"{tagged} (access point {other.access_point_id})")
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
    def _on_other_file_system(existing: AccessPoint, fs_id: str, plan: Plan) -> AlreadyExists:
        return AlreadyExists(
            f"volume {shown(plan.name)} already exists on file system "
            f"{existing.file_system_id} (access point {existing.access_point_id}), not on "
            f"{fs_id}: EFS client tokens are unique per account and region, so one volume "
            "name cannot have access points on two file systems")

    async def _resolve_conflict(self, cloud: Cloud, fs_id: str, plan: Plan,
                                conflict: AlreadyExists, *, token: str) -> AccessPoint:
        """The token is taken by an access point we did not know: look it up and compare."""
        existing: AccessPoint | None = None
        named = getattr(conflict, "access_point_id", None)
        if isinstance(conflict, AccessPointAlreadyExistsError) and named:
            # EFS named it: one describe instead of a full re-listing.
            with contextlib.suppress(NotFound):
                existing = await cloud.describe_access_point(named)
        if existing is not None and existing.file_system_id != fs_id:
            raise self._on_other_file_system(existing, fs_id, plan)
        if existing is not None:
            self._allocator.remember(existing)
        else:
            # Our inventory missed something: list the file system again and search it.
            self._allocator.mark_stale(fs_id)
            existing = await self._allocator.find_by_token(cloud, fs_id, token)
        if existing is None:
            elsewhere = self._allocator.find_token_elsewhere(fs_id, token)
            if elsewhere is not None:
                raise self._on_other_file_system(elsewhere, fs_id, plan)
            raise AlreadyExists(
                f"volume {shown(plan.name)}: EFS reports its client token {token!r} "
                f"in use, but no access point on {fs_id} carries it: EFS client tokens are "
                "unique per account and region, so an access point on another file system "
                "(made for the same volume name) most likely holds it")
        self._check_matches(existing, plan)
        return existing

    def _check_matches(self, existing: AccessPoint, plan: Plan) -> None:
        problem = self._mismatch(existing, plan)
        if problem is not None:
            raise AlreadyExists(f"{plan.what} exists as {existing.access_point_id} but {problem}")

    def _mismatch(self, existing: AccessPoint, plan: Plan) -> str | None:
        """``plan.mismatch``, knowing the capacities of the volumes this process made (their
        capacity tag tells, but for a StorageClass with tagging disabled)."""
        return mismatch(existing, plan, self._capacities.get(
            (existing.file_system_id, existing.client_token)))

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
            cloud = await self._clouds.cloud_for(cross_account.role_arn,
                                                 cross_account.external_id)
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
            evidence = await self._pv_evidence(access_point)
            kept = deletion_refusal(access_point, evidence)
            if kept is not None:
                # Another PV names this access point (forged, or a hand-made copy): it never
                # made it, so it has nothing of its own to delete, and the volume is done.
                _log.warning("kept access point: the PV being deleted did not create it",
                             access_point_id=ap_id, volume_id=volume_id, reason=kept)
                return
            if self._root_dirs is None:
                with contextlib.suppress(NotFound):
                    await cloud.delete_access_point(ap_id)
                self._forget(access_point)
                return
            await self._delete_with_root_dir(cloud, access_point, evidence)

    def _forget(self, access_point: AccessPoint) -> None:
        self._allocator.forget(access_point.file_system_id, access_point.access_point_id)
        self._capacities.pop((access_point.file_system_id, access_point.client_token), None)

    async def _delete_with_root_dir(self, cloud: Cloud, access_point: AccessPoint,
                                    evidence: PvEvidence | None = None) -> None:
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
        if evidence is None:
            evidence = await self._pv_evidence(access_point)
        keep = ownership_refusal(access_point, self._cluster_id, evidence)
        if keep is None:
            # Only the access points whose root overlaps can be a reason to keep it.
            keep = refusal(access_point, await self._allocator.known_overlapping_listed(
                cloud, fs_id, access_point.root_path))
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
        live = await self._allocator.known_overlapping_listed(
            cloud, access_point.file_system_id, access_point.root_path)
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
                f"{exc.message}: DeleteVolume reads the PV an access point was made for, so "
                "that it deletes only what the PV being deleted made (and, with "
                "--delete-access-point-root-dir, its directory); the controller's "
                "ServiceAccount needs get on persistentvolumes (the Helm chart grants it)"
            ) from None

    async def check_exists(self, volume_id: str, secrets: Mapping[str, str]) -> VolumeHandle:
        """NotFound unless the volume's access point (or file system) exists."""
        try:
            handle = parse_volume_id(volume_id)
        except InvalidArgument as exc:
            raise NotFound(f"volume {shown(volume_id)} does not exist: {exc.message}") from None
        cross_account = parse_secrets(secrets)
        cloud = await self._clouds.cloud_for(cross_account.role_arn, cross_account.external_id)
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
