"""What a CreateVolume will make, decided before any AWS call (pure, no I/O).

``plan_create`` takes the request (its name, capacity and StorageClass parameters) and the
controller's settings and returns a ``Plan``: the validated parameters, the access point's root
directory, the volume's client tokens, its GID needs (in ``params``: the StorageClass's gid, or
the range to pick one from) and its tags. The plan then travels alone:
``efs_csi_controller.provisioning`` does the I/O it asks for and reads its fields (a bad
StorageClass is answered INVALID_ARGUMENT naming the parameter here, and never leaves a
half-made access point behind).

Client tokens: a volume's token is its name (its SHA-256 when longer than EFS's 64
characters); after yields (``efs_csi_controller.gid``: its GID was taken by another access
point), the SHA-256 of the name and the yield's number. With ``reuseAccessPoint`` the name is
``<pvc namespace>/<pvc name>``, so equal PVC names in two namespaces never share an access
point; the reference driver's own token for this PVC (the SHA-256 of the PVC name alone) is the
``reference_token`` whose access point may be adopted (``no_proof``).

``mismatch`` and ``no_proof`` judge an access point found under the plan's tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from efs_csi.cloud import AccessPoint
from efs_csi.errors import InvalidArgument, shown
from efs_csi_controller import paths
from efs_csi_controller.params import (
    DEFAULT_SUB_PATH_PATTERN,
    REFERENCE_ACCESS_POINTS_NAMESPACE,
    ProvisionParams,
    parse_parameters,
)
from efs_csi_controller.tags import (
    CAPACITY_TAG,
    LEGACY_CLUSTER_ID,
    PV_NAME_TAG,
    PVC_NAMESPACE_TAG,
    access_point_tags,
    tag_value,
)

MAX_CLIENT_TOKEN = 64
#: How often one create gives its GID up to another access point before it stops (ABORTED:
#: csi-provisioner retries later).
MAX_YIELDS = 5


def client_token(text: str, yields: int = 0) -> str:
    """EFS allows 64 characters: longer names are replaced by their SHA-256. The access point
    made after a volume's ``yields``-th yield has the SHA-256 of the name and that number."""
    if yields:
        return hashlib.sha256(f"{text}\0gid-yield-{yields}".encode()).hexdigest()
    if len(text) <= MAX_CLIENT_TOKEN:
        return text
    return hashlib.sha256(text.encode()).hexdigest()


def reference_reuse_token(pvc_name: str) -> str:
    """The reference driver's token for ``reuseAccessPoint``: SHA-256 of the PVC name alone."""
    return hashlib.sha256(pvc_name.encode()).hexdigest()


def settles_gids(access_point: AccessPoint) -> bool:
    """Whether an access point was made by a controller of this driver, which settles the GIDs
    it picks (its capacity tag, which the reference driver does not write, tells)."""
    return CAPACITY_TAG in access_point.tags


@dataclass(frozen=True)
class Plan:
    """A validated create: everything its I/O needs, decided once."""

    name: str  # the CSI volume name (the PV's name)
    capacity_bytes: int
    params: ProvisionParams
    root_path: str
    #: The volume's client tokens: ``tokens[n]`` is the token after ``n`` yields.
    tokens: tuple[str, ...]
    tags: Mapping[str, str]
    #: The reference driver's token for this PVC, whose access point may be adopted.
    reference_token: str | None = None
    #: How errors name the volume ("volume 'pv-1'", "access point for this PVC").
    what: str = ""


def plan_create(name: str, capacity_bytes: int, parameters: Mapping[str, str], *,
                extra_tags: Mapping[str, str], cluster_id: str = LEGACY_CLUSTER_ID) -> Plan:
    """The plan for a create of volume ``name``; InvalidArgument naming the first bad
    parameter."""
    # The CSI volume name is the PV name: used when the provisioner did not pass one.
    params = parse_parameters(parameters, volume_name=name)
    root = paths.root_path(
        base_path=params.base_path, sub_path_pattern=params.sub_path_pattern,
        metadata=params.metadata, ensure_unique_directory=params.ensure_unique_directory,
        volume_name=name,
        shorten_to_fit=params.sub_path_pattern == DEFAULT_SUB_PATH_PATTERN)
    text, reference = name, None
    if params.reuse_access_point:
        meta = params.metadata
        if not meta.pvc_name or not meta.pvc_namespace:
            raise InvalidArgument("parameter reuseAccessPoint=true needs the PVC name and "
                                  "namespace (run csi-provisioner with --extra-create-metadata)")
        # The namespace is part of the token: equal PVC names in two namespaces must never
        # share an access point.
        text, reference = f"{meta.pvc_namespace}/{meta.pvc_name}", reference_reuse_token(
            meta.pvc_name)
    tags = access_point_tags(enabled=params.enable_tagging, extra=extra_tags,
                             metadata=params.metadata, capacity_bytes=capacity_bytes,
                             base_path=paths.normalised_base_path(params.base_path),
                             cluster_id=cluster_id)
    what = ("access point for this PVC" if params.reuse_access_point
            else f"volume {shown(name)}")
    return Plan(name, capacity_bytes, params, root,
                tuple(client_token(text, yields) for yields in range(MAX_YIELDS + 1)), tags,
                reference, what)


def mismatch(existing: AccessPoint, plan: Plan, capacity: int | None) -> str | None:
    """Why ``existing`` (under one of the plan's tokens, or the reference driver's) is not
    what the plan would make, or None; ``capacity``: what it was made with, when known."""
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
    if recorded and recorded.isdigit():
        capacity = int(recorded)
    if capacity is not None and capacity != plan.capacity_bytes:
        return f"it was created with capacity {capacity} bytes, not {plan.capacity_bytes}"
    return None


def no_proof(reference: AccessPoint, plan: Plan) -> str | None:
    """Why the reference driver's ``reference`` cannot be shown to be this claim's, or None."""
    meta = plan.params.metadata
    namespace = meta.pvc_namespace or ""
    tagged = reference.tags.get(PVC_NAMESPACE_TAG)
    if tagged is not None and tagged != tag_value(namespace):
        return f"it belongs to a PVC in namespace {tagged}"
    if meta.pv_name and reference.tags.get(PV_NAME_TAG) == tag_value(meta.pv_name):
        return None
    allowed = plan.params.reference_namespace
    if allowed == namespace:
        return None
    if allowed is not None:
        return (f"the StorageClass's {REFERENCE_ACCESS_POINTS_NAMESPACE} gives the reference "
                f"driver's access points to namespace {allowed}, not {namespace}")
    return (f"its token names the PVC but no namespace, its {PV_NAME_TAG} tag does not name "
            f"PV {meta.pv_name}, and the StorageClass's {REFERENCE_ACCESS_POINTS_NAMESPACE} "
            "does not name this namespace")
