"""Image references as the chart renders them (real helm): by tag by default, by digest
(repository@sha256:...) when pinned, each image and each sidecar on its own; the schema refuses
a malformed digest. And the node's TLS allowances: off by default, rendered as the node's flags
when set (tests/chart/test_flags.py runs every rendered argument list through the binary)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.render import Manifest, helm, render, template_args

DIGESTS = {name: "sha256:" + digit * 64 for name, digit in (
    ("controller", "1"), ("node", "2"), ("controllerEfs", "3"), ("csiProvisioner", "4"),
    ("nodeDriverRegistrar", "5"), ("livenessProbe", "6"))}


def images(manifests: list[Manifest]) -> dict[tuple[str, str], str]:
    """(workload kind, container name) -> image, for every container of every workload."""
    found = {}
    for manifest in manifests:
        if manifest.get("kind") not in ("Deployment", "DaemonSet"):
            continue
        spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            found[(manifest["kind"], container["name"])] = container["image"]
    return found


def test_by_default_every_image_is_pulled_by_tag() -> None:
    rendered = images(render(sets=["region=us-east-1"]))
    assert rendered == {
        ("Deployment", "efs-plugin"): "ghcr.io/efs-csi/efs-csi-controller:" + _app_version(),
        ("Deployment", "csi-provisioner"): "registry.k8s.io/sig-storage/csi-provisioner:v5.3.0",
        ("Deployment", "liveness-probe"): "registry.k8s.io/sig-storage/livenessprobe:v2.16.0",
        ("DaemonSet", "efs-plugin"): "ghcr.io/efs-csi/efs-csi-node:" + _app_version(),
        ("DaemonSet", "csi-driver-registrar"):
            "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.14.0",
        ("DaemonSet", "liveness-probe"): "registry.k8s.io/sig-storage/livenessprobe:v2.16.0",
    }


def pinned_sets() -> list[str]:
    sets = [f"image.digest.{name}={DIGESTS[name]}"
            for name in ("controller", "node", "controllerEfs")]
    sets += [f"sidecars.{name}.image.digest={DIGESTS[name]}"
             for name in ("csiProvisioner", "nodeDriverRegistrar", "livenessProbe")]
    return sets


def test_each_digest_pins_its_own_image_and_the_tag_is_not_used() -> None:
    rendered = images(render(sets=["region=us-east-1", "image.tag=v9", *pinned_sets()]))
    assert rendered == {
        ("Deployment", "efs-plugin"): f"ghcr.io/efs-csi/efs-csi-controller@{DIGESTS['controller']}",
        ("Deployment", "csi-provisioner"):
            f"registry.k8s.io/sig-storage/csi-provisioner@{DIGESTS['csiProvisioner']}",
        ("Deployment", "liveness-probe"):
            f"registry.k8s.io/sig-storage/livenessprobe@{DIGESTS['livenessProbe']}",
        ("DaemonSet", "efs-plugin"): f"ghcr.io/efs-csi/efs-csi-node@{DIGESTS['node']}",
        ("DaemonSet", "csi-driver-registrar"):
            f"registry.k8s.io/sig-storage/csi-node-driver-registrar@"
            f"{DIGESTS['nodeDriverRegistrar']}",
        ("DaemonSet", "liveness-probe"):
            f"registry.k8s.io/sig-storage/livenessprobe@{DIGESTS['livenessProbe']}",
    }


def test_the_controller_with_efs_utils_uses_its_own_digest() -> None:
    sets = ["region=us-east-1", "controller.deleteAccessPointRootDir=true", "mountBackend=efs"]
    assert images(render(sets=[*sets, *pinned_sets()]))[("Deployment", "efs-plugin")] == \
        f"ghcr.io/efs-csi/efs-csi-controller-efs@{DIGESTS['controllerEfs']}"
    # Pinning the plain controller alone leaves the controller-efs image on its tag.
    only = images(render(sets=[*sets, f"image.digest.controller={DIGESTS['controller']}"]))
    assert only[("Deployment", "efs-plugin")] == \
        "ghcr.io/efs-csi/efs-csi-controller-efs:" + _app_version()


def test_one_sidecar_pinned_leaves_the_others_on_their_tags() -> None:
    rendered = images(render(sets=[
        "region=us-east-1",
        f"sidecars.nodeDriverRegistrar.image.digest={DIGESTS['nodeDriverRegistrar']}"]))
    assert rendered[("DaemonSet", "csi-driver-registrar")].endswith(
        "@" + DIGESTS["nodeDriverRegistrar"])
    assert all("@" not in image for key, image in rendered.items()
               if key != ("DaemonSet", "csi-driver-registrar"))


@pytest.mark.parametrize("sets", [
    ["image.digest.node=sha256:0"],
    ["image.digest.node=sha256:" + "A" * 64],  # digests are lower-case hex
    ["image.digest.controller=md5:" + "a" * 32],
    ["image.digest.node=" + "a" * 64],  # no algorithm
    ["image.digest.node=v1.2.3@sha256:" + "a" * 64],
    ["image.digest.nodes=sha256:" + "a" * 64],  # unknown image
    ["sidecars.livenessProbe.image.digest=sha256:" + "a" * 63],
    ["sidecars.csiProvisioner.image.digest=latest"],
], ids=lambda sets: sets[0].split("=")[0] + "=" + sets[0].split("=")[1][:12])
def test_the_schema_refuses_a_malformed_digest(sets: list[str]) -> None:
    result = helm(*template_args(None, sets), check=False)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert "schema" in result.stderr, result.stderr


def node_args(sets: list[str]) -> list[str]:
    manifests = render(sets=["region=us-east-1", *sets])
    daemonset = next(m for m in manifests if m["kind"] == "DaemonSet")
    plugin = next(c for c in daemonset["spec"]["template"]["spec"]["containers"]
                  if c["name"] == "efs-plugin")
    return plugin["args"]  # type: ignore[no-any-return]


def test_tls_cannot_be_weakened_by_default() -> None:
    args = node_args([])
    assert not any(arg.startswith("--allow-insecure") for arg in args), args


def test_tls_allowances_become_the_node_flags() -> None:
    args = node_args(["node.allowInsecureMountOptions={notls,verify}",
                      "node.allowInsecureEfsUtilsConf=true"])
    assert "--allow-insecure-mount-options=notls,verify" in args
    assert "--allow-insecure-efs-utils-conf=true" in args


@pytest.mark.parametrize("sets", [
    ["node.allowInsecureMountOptions={tlsport}"],  # not a weakening option: nothing to allow
    ["node.allowInsecureMountOptions={notls,notls}"],
    ["node.allowInsecureMountOptions=notls"],  # a list, not a string
    ["node.allowInsecureEfsUtilsConf=yes"],
])
def test_the_schema_refuses_a_bad_tls_allowance(sets: list[str]) -> None:
    result = helm(*template_args(None, sets), check=False)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert "schema" in result.stderr, result.stderr


def _app_version() -> str:
    from efs_csi import __version__

    return __version__
