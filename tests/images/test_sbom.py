"""Each built image carries an SBOM of what it holds (docker/sbom.py, made by the build), and
the copy scripts/images/build.sh reports on is that one.

What the image holds is read here another way than the generator reads it: Debian's packages
with ``dpkg-query``, the venv's distributions from their ``*.dist-info/METADATA`` files, the
efs-proxy binary's hash with ``sha256sum``, efs-utils' commit from the pins the build verified.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from tests.images.engine import TARGETS, Engine
from tests.images.test_lock import locked
from tests.support.ci import REPO

SBOM_PATH = "/usr/share/efs-csi/sbom.cdx.json"
LOCK_OF = {"controller": "controller", "node": "node", "controller-efs": "controller"}


def image_sbom(engine: Engine, target: str) -> dict[str, Any]:
    return json.loads(engine.run(target, SBOM_PATH, entrypoint="cat").stdout)  # type: ignore[no-any-return]


def walk(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for component in components:
        found.append(component)
        found += walk(component.get("components", []))
    return found


def by_purl_type(sbom: dict[str, Any], kind: str) -> dict[str, str]:
    return {component["name"]: component["version"] for component in walk(sbom["components"])
            if component.get("purl", "").startswith(f"pkg:{kind}/")}


def efs_utils_pins(engine: Engine) -> tuple[str, str, str]:
    """The tag, commit and tree checksum the build was given: the Dockerfile's own pins (the
    vendored bundle and upstream are both checked against them)."""
    text = (REPO / "docker" / "Dockerfile").read_text()

    def arg(name: str) -> str:
        found = re.search(rf"^ARG {name}=(\S+)$", text, re.MULTILINE)
        assert found, name
        return found.group(1)

    return arg("EFS_UTILS_TAG"), arg("EFS_UTILS_COMMIT"), arg("EFS_UTILS_TREE_SHA256")


@pytest.mark.parametrize("target", TARGETS)
def test_the_sbom_is_cyclonedx_and_names_its_image(engine: Engine, target: str) -> None:
    sbom = image_sbom(engine, target)
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", sbom["serialNumber"])
    assert sbom["metadata"]["component"]["name"] == f"efs-csi-{target}"
    from efs_csi import __version__

    assert sbom["metadata"]["component"]["version"] == __version__
    refs = [component["bom-ref"] for component in walk(sbom["components"])]
    assert len(refs) == len(set(refs)), "bom-refs must be unique"
    # The copy the build reports on is the image's own.
    copied = json.loads((engine.cache / "sbom" / f"{target}.cdx.json").read_text())
    assert copied == sbom


@pytest.mark.parametrize("target", TARGETS)
def test_every_debian_package_is_listed_with_its_version(engine: Engine, target: str) -> None:
    listed = engine.run(target, "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n",
                        entrypoint="dpkg-query").stdout
    installed = {name: version for status, name, version in
                 (line.split("\t") for line in listed.splitlines()) if status[1:2] == "i"}
    sbom = image_sbom(engine, target)
    assert by_purl_type(sbom, "deb") == installed
    assert len(installed) > 50  # a Debian system, not an empty list compared with another
    system = next(c for c in sbom["components"] if c["type"] == "operating-system")
    debian_version = engine.run(target, "/etc/debian_version", entrypoint="cat").stdout.strip()
    assert (system["name"], system["version"]) == ("debian", debian_version)


LIST_DISTRIBUTIONS = """
import email.parser, json, pathlib, sys
found = {}
for metadata in pathlib.Path(sys.argv[1]).glob('lib/python3*/site-packages/*.dist-info/METADATA'):
    message = email.parser.Parser().parsestr(metadata.read_text())
    found[message['Name']] = message['Version']
print(json.dumps(found))
"""


@pytest.mark.parametrize("target", TARGETS)
def test_every_python_distribution_is_listed_and_all_but_the_drivers_are_the_locks(
        engine: Engine, target: str) -> None:
    installed = json.loads(engine.run(target, "-c", LIST_DISTRIBUTIONS, "/opt/efs-csi",
                                      entrypoint="python3").stdout)
    installed = {canonicalize_name(name): version for name, version in installed.items()}
    sbom = {canonicalize_name(name): version
            for name, version in by_purl_type(image_sbom(engine, target), "pypi").items()}
    assert sbom == installed
    binary = "efs-csi-controller" if "controller" in target else "efs-csi-node"
    from efs_csi import __version__

    lock = {name: version for name, (version, _) in locked(LOCK_OF[target]).items()}
    assert installed == {**lock, "efs-csi-core": __version__, binary: __version__}


@pytest.mark.parametrize("target", ["node", "controller-efs"])
def test_efs_utils_and_efs_proxy_are_listed_with_the_verified_commit(engine: Engine,
                                                                     target: str) -> None:
    tag, commit, tree = efs_utils_pins(engine)
    sbom = image_sbom(engine, target)
    apps = {c["name"]: c for c in sbom["components"] if c["type"] == "application"}
    efs_utils = apps["efs-utils"]
    properties = {p["name"]: p["value"] for p in efs_utils["properties"]}
    assert properties == {"efs-csi:git-tag": tag, "efs-csi:git-commit": commit,
                          "efs-csi:git-tree-sha256": tree}
    version = engine.run(target, "-c", "grep '^VERSION' /usr/sbin/efs_utils_common/constants.py",
                         entrypoint="sh").stdout
    assert f'"{efs_utils["version"]}"' in version
    proxy = apps["efs-proxy"]
    binary_hash = engine.run(target, "/usr/bin/efs-proxy", entrypoint="sha256sum").stdout
    assert proxy["hashes"] == [{"alg": "SHA-256", "content": binary_hash.split()[0]}]
    assert {p["name"]: p["value"] for p in proxy["properties"]}["efs-csi:git-commit"] == commit
    # Its crates, as efs-utils' Cargo.lock pins them, each with the registry's checksum.
    for crate in proxy.get("components", []):
        assert crate["purl"].startswith("pkg:cargo/") and len(crate["hashes"]) == 1


def test_the_controller_image_has_no_efs_utils(engine: Engine) -> None:
    sbom = image_sbom(engine, "controller")
    assert not [c for c in sbom["components"] if c["type"] == "application"]


def test_the_build_reports_the_sbom_counts(engine: Engine) -> None:
    report = engine.report["sbom"]
    assert set(report) == set(TARGETS)
    for target in TARGETS:
        sbom = image_sbom(engine, target)
        assert report[target]["total"] == len(walk(sbom["components"]))
        assert report[target]["deb"] == len(by_purl_type(sbom, "deb"))
        assert report[target]["pypi"] == len(by_purl_type(sbom, "pypi"))
        assert report[target]["step"] != "missing", "the build log has no SBOM step"


def test_the_build_copies_out_one_sbom_per_image(engine: Engine) -> None:
    assert sorted(path.name for path in (engine.cache / "sbom").glob("*.cdx.json")) == \
        sorted(f"{target}.cdx.json" for target in TARGETS)

