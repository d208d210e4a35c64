"""Proof that an access point's directory is this cluster's to remove (pure).

``--delete-access-point-root-dir`` deletes data for good, and DeleteVolume names its access
point only by the id a PV carries, which anyone who can create a PV may write. So a directory
is removed only for an access point that

- carries the cluster tag (``efs.csi.aws.com/cluster``) with this controller's ``--cluster-id``:
  made by this cluster's driver, not by another cluster, the reference driver or a person;
- carries the PV-name tag (``kubernetes.io/created-for/pv/name``): made for one PV; and
- where the controller can read the Kubernetes API (always, in a cluster), names a PV that is
  the one being deleted: this driver's, with this very volume handle, reclaim policy Delete,
  and released (or itself being deleted). A hand-made PV that names another volume's access
  point therefore never removes that volume's directory while the volume's own PV lives.

Access points made before ``--cluster-id`` existed carry the legacy value ``true``, which every
cluster in an account shares (``tags.LEGACY_CLUSTER_ID``): the tag alone proves nothing, so they
count as this cluster's only when the PV check above vouches for them. Outside a cluster (no
Kubernetes API: the demo, tests) there are no PVs anyone could forge, and the tags decide.

The access point itself (``deletion_refusal``) is kept only on that last proof's evidence:
when the PV it was made for lives and is not the one being deleted, DeleteVolume comes from
another PV that names it (forged, or a hand-made copy), which never created it, so DeleteVolume
answers success and keeps it. An access point without the PV-name tag (made with tagging off,
or by an older driver), with no Kubernetes API to ask, or whose PV does not exist (csi-provisioner
deletes a volume whose PV it could not save) is deleted, and the IAM policy
(docs/iam-policy.json) guards that call by the cluster tag.
"""

from __future__ import annotations

from dataclasses import dataclass

from efs_csi.cloud import AccessPoint
from efs_csi.contract import PLUGIN_NAME
from efs_csi.contract.volume_id import VolumeHandle, parse_volume_id
from efs_csi.errors import InvalidArgument
from efs_csi.kube import PersistentVolumeInfo
from efs_csi_controller.tags import CLUSTER_TAG, LEGACY_CLUSTER_ID, PV_NAME_TAG

#: PV phases in which csi-provisioner deletes a volume (besides a PV being deleted itself).
_RELEASED_PHASES = frozenset({"Released", "Failed"})


@dataclass(frozen=True)
class PvEvidence:
    """What the Kubernetes API says of the PV an access point was made for.

    ``available`` is False when the controller has no Kubernetes API (outside a cluster);
    ``volume`` is None when the API has no PV of that name."""

    available: bool
    volume: PersistentVolumeInfo | None = None


NO_API = PvEvidence(available=False)


def pv_name_of(access_point: AccessPoint) -> str | None:
    """The PV an access point was made for, from its tag (PV names need no escaping)."""
    return access_point.tags.get(PV_NAME_TAG) or None


def tag_refusal(access_point: AccessPoint, cluster_id: str) -> str | None:
    """Why the tags alone rule the directory out, or None (no Kubernetes API needed)."""
    value = access_point.tags.get(CLUSTER_TAG)
    if value is None:
        return f"it has no {CLUSTER_TAG} tag, so this driver did not make it"
    if value not in (cluster_id, LEGACY_CLUSTER_ID):
        return f"its {CLUSTER_TAG} tag names another cluster ({value!r}, this one is " \
               f"{cluster_id!r})"
    if pv_name_of(access_point) is None:
        return f"it has no {PV_NAME_TAG} tag, so no PV can be shown to own it"
    return None


def _same_volume(handle: str | None, access_point: AccessPoint) -> bool:
    if not handle:
        return False
    try:
        parsed: VolumeHandle = parse_volume_id(handle)
    except InvalidArgument:
        return False
    return (parsed.file_system_id == access_point.file_system_id
            and parsed.access_point_id == access_point.access_point_id)


def ownership_refusal(access_point: AccessPoint, cluster_id: str,
                      evidence: PvEvidence) -> str | None:
    """Why this access point's directory is not this cluster's to remove, or None."""
    refused = tag_refusal(access_point, cluster_id)
    if refused is not None:
        return refused
    legacy = access_point.tags.get(CLUSTER_TAG) != cluster_id
    pv_name = pv_name_of(access_point)
    if not evidence.available:
        if legacy:
            return (f"its {CLUSTER_TAG} tag has the value {LEGACY_CLUSTER_ID!r} every cluster "
                    "shared before --cluster-id, and without the Kubernetes API no PV can "
                    "vouch for it")
        return None
    volume = evidence.volume
    if volume is None:
        return f"PV {pv_name}, which it was made for, does not exist"
    return _not_being_deleted(access_point, volume)


def deletion_refusal(access_point: AccessPoint, evidence: PvEvidence) -> str | None:
    """Why DeleteVolume must keep the access point itself (the PV it was made for lives and is
    not the one being deleted), or None to delete it (see the module docstring)."""
    if pv_name_of(access_point) is None or evidence.volume is None:
        return None
    return _not_being_deleted(access_point, evidence.volume)


def _not_being_deleted(access_point: AccessPoint, volume: PersistentVolumeInfo) -> str | None:
    """Why ``volume``, the PV ``access_point`` was made for, is not the PV being deleted (the
    one csi-provisioner deletes is this driver's, names this access point, reclaim policy
    Delete, and released or being deleted), or None."""
    pv_name = pv_name_of(access_point) or volume.name
    if volume.driver != PLUGIN_NAME:
        return f"PV {pv_name} is not a volume of {PLUGIN_NAME}"
    if not _same_volume(volume.volume_handle, access_point):
        return f"PV {pv_name}, which it was made for, names another volume " \
               f"({volume.volume_handle!r})"
    if volume.reclaim_policy != "Delete":
        return f"PV {pv_name} has reclaim policy {volume.reclaim_policy}, not Delete"
    if volume.phase not in _RELEASED_PHASES and not volume.deleting:
        return f"PV {pv_name} is {volume.phase}, not released or being deleted: the " \
               "volume being deleted is another PV that names this access point"
    return None
