"""The volumes apps share across nodes, and what must hold while they do and after they stop.

Two volumes: a dynamic one (the StorageClass and claim of examples/dynamic_provisioning, with the
flow's file system) and a static one (an access point made through the EFS API, and a PV made
for it by hand). Each is used by a writer on one node and a read-only reader on the other, so
each node stages both volumes once and publishes one per pod.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from testbed.kind import apps, manifests
from testbed.kind.cluster import PluginPod, rpc_calls, wait_for
from testbed.kind.context import Context
from testbed.kind.mounts import (
    Expected,
    Volume,
    app_view_problems,
    differences,
    ours,
    parse_table,
    propagation_problems,
    publish_path,
    staged_root,
    staging_path,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "dynamic_provisioning" / "specs"
EXAMPLE_FILE_SYSTEM = "fs-92107410"  # the id the example StorageClass names
STATIC_PV = "efs-e2e-static"
STATIC_CLAIM = "efs-e2e-static"
STATIC_DIRECTORY = "/e2e-static"
AFTER_WINDOW_S = 15  # how long an app that stopped doing I/O is given to show it still runs


@dataclass(frozen=True)
class SharedVolume:
    label: str
    claim: str
    pv: str
    handle: str
    file_system: str
    directory: str  # the access point's root directory

    @property
    def volume(self) -> Volume:
        return Volume(self.pv, self.handle)


@dataclass(frozen=True)
class App:
    name: str
    volume: SharedVolume
    node: str
    writes: bool
    uid: str


def prepare(ctx: Context, file_system: str) -> list[SharedVolume]:
    """The dynamic and the static volume, provisioned and bound."""
    tools = ctx.tools
    tools.apply([manifests.namespace()])
    # The example's StorageClass with our file system, as docs/kind.md has users apply it.
    storage_class = (EXAMPLES / "storageclass.yaml").read_text().replace(
        EXAMPLE_FILE_SYSTEM, file_system)
    name = json.loads(tools.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                    stdin=storage_class))["metadata"]["name"]
    # StorageClass parameters are immutable: replace the class when the file system changed
    # (the EFS API restarted and forgot the one the class names).
    existing = tools.kubectl("get", "storageclass", name, "--ignore-not-found", "-o",
                             "jsonpath={.parameters.fileSystemId}")
    if existing and existing != file_system:
        tools.kubectl("delete", "storageclass", name)
    tools.kubectl("apply", "-f", "-", stdin=storage_class)
    claim = json.loads(tools.kubectl("apply", "-n", manifests.NAMESPACE, "-o", "json",
                                     "-f", str(EXAMPLES / "claim.yaml")))

    # A static volume an earlier, interrupted run left behind names an access point of its own.
    tools.kubectl("delete", "pvc", "-n", manifests.NAMESPACE, STATIC_CLAIM, "--ignore-not-found",
                  "--wait=true", timeout=120)
    tools.kubectl("delete", "pv", STATIC_PV, "--ignore-not-found", "--wait=true", timeout=120)
    access_point = ctx.api.create_access_point(file_system, STATIC_DIRECTORY, 1000, 1000)
    handle = f"{file_system}::{access_point}"
    tools.apply([manifests.static_volume(STATIC_PV, handle, STATIC_CLAIM),
                 manifests.claim(STATIC_CLAIM, "", volume_name=STATIC_PV)])

    def bound(claim_name: str) -> str | None:
        got = tools.get("pvc", claim_name, "-n", manifests.NAMESPACE)
        return got["spec"].get("volumeName") if got["status"].get("phase") == "Bound" else None

    dynamic_pv = wait_for("the example claim to be Bound",
                          functools.partial(bound, claim["metadata"]["name"]), 120)
    wait_for("the static claim to be Bound", lambda: bound(STATIC_CLAIM), 60)
    dynamic_handle = tools.get("pv", dynamic_pv)["spec"]["csi"]["volumeHandle"]
    dynamic_ap = dynamic_handle.rsplit(":", 1)[-1]
    dynamic_directory = ctx.api.access_point(dynamic_ap)["RootDirectory"]["Path"]
    return [SharedVolume("dynamic", claim["metadata"]["name"], dynamic_pv, dynamic_handle,
                         file_system, dynamic_directory),
            SharedVolume("static", STATIC_CLAIM, STATIC_PV, handle, file_system,
                         STATIC_DIRECTORY)]


def start_apps(ctx: Context, volumes: list[SharedVolume], nodes: list[str],
               cycle: str) -> list[App]:
    """A writer and a read-only reader per volume, on different nodes (the first volume's
    writer on the first node, the second's on the second)."""
    planned = []
    for index, volume in enumerate(volumes):
        writer_node, reader_node = nodes[index % 2], nodes[(index + 1) % 2]
        writer = f"{volume.label}-writer-{cycle}"
        planned += [(manifests.writer(writer, volume.claim, writer_node), volume, writer_node,
                     True),
                    (manifests.reader(f"{volume.label}-reader-{cycle}", volume.claim, writer,
                                      reader_node), volume, reader_node, False)]
    ctx.tools.apply(manifest for manifest, *_ in planned)
    names = [manifest["metadata"]["name"] for manifest, *_ in planned]
    pods = ctx.cluster.wait_pods_ready(names, manifests.NAMESPACE)
    started = [App(manifest["metadata"]["name"], volume, node, writes,
                   pods[manifest["metadata"]["name"]]["metadata"]["uid"])
               for manifest, volume, node, writes in planned]
    for app in started:
        where = pods[app.name]["spec"]["nodeName"]
        ctx.report.check(f"{cycle}: {app.name} runs on {app.node}", where == app.node,
                         f"scheduled to {where}")
    return started


def _exec(ctx: Context, pod: str, script: str, check: bool = True) -> tuple[int, str]:
    result = ctx.tools.run([ctx.tools.kubectl_path, "exec", "-n", manifests.NAMESPACE, pod,
                            "--", "sh", "-c", script], check=check)
    return result.returncode, result.stdout + result.stderr


def check_sharing(ctx: Context, started: list[App], cycle: str) -> None:
    """What one pod writes the other reads; the reader cannot write; the file lands in the
    access point's directory, which is what each node's staging mount shows."""
    for volume in {app.volume for app in started}:
        writer = next(a for a in started if a.volume == volume and a.writes)
        reader = next(a for a in started if a.volume == volume and not a.writes)
        token = secrets.token_hex(8)
        _exec(ctx, writer.name, f"echo {token} > /data/shared-{cycle}.txt")
        _, read = _exec(ctx, reader.name, f"cat /data/shared-{cycle}.txt")
        ctx.report.check(f"{cycle}: {volume.label} volume: {reader.name} on {reader.node} reads "
                         f"what {writer.name} on {writer.node} wrote", read.strip() == token,
                         f"read {read.strip()!r}")
        code, output = _exec(ctx, reader.name, "echo no > /data/read-only-probe", check=False)
        ctx.report.check(f"{cycle}: {volume.label} volume: {reader.name} cannot write",
                         code != 0 and "Read-only" in output, output.strip())
        on_disk = ctx.tools.on_node(
            writer.node, "cat", f"{ctx.settings.local_root}/{volume.file_system}"
                                f"{volume.directory}/shared-{cycle}.txt", check=False)
        ctx.report.check(f"{cycle}: {volume.label} volume: the file is in the access point's "
                         f"directory {volume.directory}", on_disk.strip() == token,
                         f"found {on_disk.strip()!r}")
        for node in {writer.node, reader.node}:
            root = staged_root(ctx.cluster.mount_table(node), volume.handle)
            ctx.report.check(
                f"{cycle}: {volume.label} volume: {node} stages the access point's directory",
                root is not None and root.endswith(f"/{volume.file_system}{volume.directory}"),
                f"staging mount shows {root}")


def expected_on(node: str, started: Iterable[App]) -> Expected:
    on_node = [app for app in started if app.node == node]
    return Expected(staged=frozenset(app.volume.handle for app in on_node),
                    published=frozenset((app.uid, app.volume.pv) for app in on_node))


def check_mounts(ctx: Context, started: list[App], nodes: list[str], label: str) -> None:
    """Each node holds one staging mount per volume and one bind per pod, nothing stacked."""
    volumes = [app.volume.volume for app in started]
    for node in nodes:
        problems = differences(ctx.cluster.mount_table(node), volumes,
                               expected_on(node, started))
        ctx.report.check(f"{label}: {node} holds one staging mount per volume and one bind "
                         "per pod, nothing stacked", not problems, "; ".join(problems))


def check_propagation(ctx: Context, started: list[App], plugins: dict[str, PluginPod],
                      label: str) -> None:
    """The mounts the node plugin makes inside its container reach the node and the apps'
    containers (mountPropagation: Bidirectional), and the plugin pods that serve now see the
    mounts of the apps that run (so a replaced plugin pod can still unmount them): each staging
    mount is one mount in the plugin container and on the node, peers in one shared peer
    group, and each app's /data shows its directory."""
    for node in sorted({app.node for app in started}):
        plugin = plugins[node]
        plugin_info = ctx.cluster.container_mountinfo(node, plugin.container_id)
        node_info = ctx.cluster.node_mountinfo(node)
        node_table = parse_table(node_info)
        on_node = [app for app in started if app.node == node]
        for volume in {app.volume for app in on_node}:
            problems = propagation_problems(plugin_info, node_info, volume.handle)
            ctx.report.check(
                f"{label}: propagation: {node}: the {volume.label} volume's staging mount is "
                f"the same mount in {plugin.name}'s container and on the node, peers",
                not problems, "; ".join(problems))
        for app in on_node:
            staged = node_table.at(staging_path(app.volume.handle))
            app_info = ctx.cluster.container_mountinfo(
                node, ctx.cluster.container_id(app.name, manifests.NAMESPACE, "app"))
            problems = (["the node holds no staging mount"] if staged is None
                        else app_view_problems(app_info, "/data", staged))
            ctx.report.check(f"{label}: propagation: {app.name}'s container on {node} sees the "
                             "staged directory at /data", not problems, "; ".join(problems))


def check_io_went_on(ctx: Context, started: list[App], start: float, end: float,
                     label: str) -> None:
    """Every app's I/O went on through ``[start, end]``, without an error."""
    longest = 0.0
    for app in started:
        def samples_so_far(app: App = app) -> list[apps.Sample]:
            if app.writes:
                _, log = _exec(ctx, app.name, f"cat /data/{app.name}.log")
                return apps.writer_samples(log)
            return apps.reader_samples(
                ctx.tools.kubectl("logs", "-n", manifests.NAMESPACE, app.name))

        def logged_after_window(app: App = app) -> list[apps.Sample] | None:
            found = samples_so_far(app)
            return found if any(sample.at > end for sample in found) else None

        # An app that goes on logs an operation after the window within a second (writers
        # every 0.2s, readers every 0.5s): looking right at the window's end may come first.
        try:
            samples = wait_for(f"{app.name} to log an operation after the window",
                               logged_after_window, AFTER_WINDOW_S)
        except TimeoutError:
            samples = samples_so_far()
        output = ctx.tools.kubectl("logs", "-n", manifests.NAMESPACE, app.name)
        went = apps.continuity(samples, start, end)
        failures = apps.errors(output)
        longest = max(longest, went.longest_pause_s)
        ctx.report.check(
            f"{label}: {app.name} ({'writes' if app.writes else 'reads'} on {app.node}) went on",
            went.went_on and not failures,
            f"{went.operations} operations in {end - start:.1f}s, longest pause "
            f"{went.longest_pause_s}s, errors: {failures[:3]}")
    ctx.report.figure(f"{label}: longest I/O pause (s)", longest)


def stop_apps(ctx: Context, started: list[App], plugins: dict[str, PluginPod],
              label: str) -> None:
    """Delete the apps; their volumes must be unpublished and unstaged through the plugin pods
    ``plugins`` (by node), and nothing of them may stay mounted."""
    nodes = sorted({app.node for app in started})
    ctx.tools.kubectl("delete", "pod", "-n", manifests.NAMESPACE, "--wait=true",
                      *[app.name for app in started], timeout=180)
    volumes = [app.volume.volume for app in started]

    def unmounted() -> bool:
        return all(not ours(ctx.cluster.mount_table(node), volumes) for node in nodes)

    try:
        wait_for("the apps' volumes to be unmounted", unmounted, 90)
        left = ""
    except TimeoutError:
        left = "; ".join(
            f"{node}: {[e.mount_point for e in ours(ctx.cluster.mount_table(node), volumes)]}"
            for node in nodes)
    ctx.report.check(f"{label}: nothing of the apps' volumes stays mounted", not left, left)
    for node in nodes:
        pod = plugins[node]
        calls = [call for call in rpc_calls(ctx.cluster.plugin_log(pod.name)) if call.code == "OK"]
        on_node = [app for app in started if app.node == node]
        unpublished = {(c.volume_id, c.target_path) for c in calls
                       if c.method == "NodeUnpublishVolume"}
        unstaged = {c.volume_id for c in calls if c.method == "NodeUnstageVolume"}
        missing = [f"unpublish {app.name}" for app in on_node
                   if (app.volume.handle, publish_path(app.uid, app.volume.pv)) not in unpublished]
        missing += [f"unstage {handle}" for handle in {app.volume.handle for app in on_node}
                    if handle not in unstaged]
        ctx.report.check(f"{label}: {node}'s plugin pod {pod.name} unpublished and unstaged "
                         "every volume of the deleted apps", not missing, ", ".join(missing))
