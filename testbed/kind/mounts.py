"""What a kind node's mount table says about our volumes (pure).

kubelet stages a CSI volume at ``<kubelet>/plugins/kubernetes.io/csi/<driver>/<sha256 of the
volume handle>/globalmount`` and publishes it for a pod at
``<kubelet>/pods/<pod uid>/volumes/kubernetes.io~csi/<PV name>/mount``. A node serving a volume
to pods holds exactly one mount at the first (one staging per volume per node) and one at the
second per pod; a path listed twice is a mount stacked on another, which a plugin restart
must never make.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from efs_csi.contract import PLUGIN_NAME
from efs_csi.mounting.mountinfo import MountEntry, MountTable, parse_line

KUBELET_DIR = "/var/lib/kubelet"


def staging_path(volume_handle: str, driver: str = PLUGIN_NAME) -> str:
    digest = hashlib.sha256(volume_handle.encode()).hexdigest()
    return f"{KUBELET_DIR}/plugins/kubernetes.io/csi/{driver}/{digest}/globalmount"


def publish_path(pod_uid: str, pv_name: str) -> str:
    return f"{KUBELET_DIR}/pods/{pod_uid}/volumes/kubernetes.io~csi/{pv_name}/mount"


def parse_table(mountinfo: str) -> MountTable:
    return MountTable(parse_line(line) for line in mountinfo.splitlines() if line.strip())


@dataclass(frozen=True)
class Volume:
    """A PV of ours as the flow knows it."""

    pv_name: str
    handle: str


def ours(table: MountTable, volumes: Iterable[Volume]) -> list[MountEntry]:
    """The mounts of these volumes: their staging mounts and their pods' publish mounts."""
    staging = {staging_path(volume.handle) for volume in volumes}
    suffixes = tuple(f"/volumes/kubernetes.io~csi/{volume.pv_name}/mount" for volume in volumes)
    return [entry for entry in table.entries
            if entry.mount_point in staging
            or (entry.mount_point.startswith(f"{KUBELET_DIR}/pods/")
                and entry.mount_point.endswith(suffixes))]


def stacked(entries: Iterable[MountEntry]) -> list[str]:
    """Mount points listed more than once."""
    counts = Counter(entry.mount_point for entry in entries)
    return sorted(path for path, count in counts.items() if count > 1)


@dataclass(frozen=True)
class Expected:
    """What a node must hold: one staging mount per volume, one publish mount per pod."""

    staged: frozenset[str]  # volume handles
    published: frozenset[tuple[str, str]]  # (pod uid, PV name)


def differences(table: MountTable, volumes: Iterable[Volume], expected: Expected) -> list[str]:
    """How the node's mounts of these volumes differ from ``expected`` (empty: as expected)."""
    volumes = list(volumes)
    entries = ours(table, volumes)
    found = Counter(entry.mount_point for entry in entries)
    wanted = Counter({staging_path(handle): 1 for handle in expected.staged})
    wanted.update({publish_path(uid, pv): 1 for uid, pv in expected.published})
    problems = [f"{path}: mounted {found[path]} times, expected {count}"
                for path, count in sorted(wanted.items()) if found[path] != count]
    problems += [f"{path}: mounted {count} times, expected none"
                 for path, count in sorted(found.items()) if path not in wanted]
    return problems


def staged_root(table: MountTable, volume_handle: str) -> str | None:
    """The directory the staging mount of ``volume_handle`` shows (its root within the file
    system holding the local backend's data), if it is mounted."""
    entry = table.at(staging_path(volume_handle))
    return None if entry is None else entry.root


def peer_groups(mountinfo: str) -> dict[str, frozenset[int]]:
    """The shared peer groups (``shared:N`` in mountinfo's optional fields) of each mount
    point. Two mount namespaces whose copies of a mount share a peer group propagate mounts
    and unmounts to each other: what ``mountPropagation: Bidirectional`` sets up between the
    node plugin's container and its node."""
    groups: dict[str, set[int]] = {}
    for text in mountinfo.splitlines():
        if not text.strip():
            continue
        fields = text.split(" ")
        optional = fields[6:fields.index("-", 6)]
        entry = parse_line(text)
        groups.setdefault(entry.mount_point, set()).update(
            int(field.split(":", 1)[1]) for field in optional if field.startswith("shared:"))
    return {point: frozenset(found) for point, found in groups.items()}


def propagation_problems(plugin_mountinfo: str, node_mountinfo: str,
                         volume_handle: str) -> list[str]:
    """How the staging mount of ``volume_handle`` fails to be one mount seen alike in the node
    plugin's container and on its node (empty: it is): present on both sides, the same
    directory of the same file system, and peers (a shared peer group in common), so what the
    plugin mounts reaches the node and its pods, and what a new plugin pod unmounts leaves the
    node too."""
    path = staging_path(volume_handle)
    in_plugin = parse_table(plugin_mountinfo).at(path)
    on_node = parse_table(node_mountinfo).at(path)
    missing = [where for where, entry in (("the plugin container", in_plugin),
                                          ("the node", on_node)) if entry is None]
    if in_plugin is None or on_node is None:
        return [f"{path}: not mounted in {' nor in '.join(missing)}"]
    problems = []
    if not in_plugin.same_origin(on_node):
        problems.append(f"{path}: the plugin container shows {in_plugin.device} "
                        f"{in_plugin.root}, the node {on_node.device} {on_node.root}")
    plugin_groups = peer_groups(plugin_mountinfo).get(path, frozenset())
    node_groups = peer_groups(node_mountinfo).get(path, frozenset())
    if not plugin_groups & node_groups:
        problems.append(f"{path}: not peers (plugin container shared:{sorted(plugin_groups)}, "
                        f"node shared:{sorted(node_groups)})")
    return problems


def app_view_problems(app_mountinfo: str, mount_path: str, staged: MountEntry) -> list[str]:
    """How an app container's mount at ``mount_path`` fails to show what the staging mount
    ``staged`` shows (empty: the same directory of the same file system)."""
    seen = parse_table(app_mountinfo).at(mount_path)
    if seen is None:
        return [f"nothing mounted at {mount_path} in the app container"]
    if not seen.same_origin(staged):
        return [f"{mount_path} shows {seen.device} {seen.root}, the staging mount "
                f"{staged.device} {staged.root}"]
    return []
