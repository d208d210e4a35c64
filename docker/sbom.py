"""The software bill of materials of the image it runs in, as CycloneDX 1.5 JSON on stdout.

Run by docker/Dockerfile as the last build step of each image, with the image's own venv
interpreter (so importlib.metadata sees the venv), and saved in the image at
/usr/share/efs-csi/sbom.cdx.json (scripts/images/build.sh copies each out next to its report).
Standard library only: it runs in the image, which has nothing else.

What it lists, each with its version and a package URL:
- the operating system (Debian, /etc/debian_version) and every Debian package dpkg has
  installed (/var/lib/dpkg/status), pkg:deb;
- every Python distribution of the venv, pkg:pypi (all of them but the driver's own come from
  the hash-checked lock, docker/requirements/);
- efs-utils, when the image has it: the release (its own VERSION), the git tag, commit and tree
  checksum the build verified (--efs-utils-tag/-commit/-tree-sha256), and efs-proxy, built from
  it, with the sha256 of the binary and the crates its Cargo.lock pins (pkg:cargo, with their
  checksums; Cargo.lock covers every platform, so a few crates for others are listed too).

No timestamp, and a serial number derived from the content: the same image gives the same
bytes, so the step is reproducible and BuildKit's cache keeps it.

Usage: sbom.py --image NAME [--efs-utils-tag T --efs-utils-commit C --efs-utils-tree-sha256 S
                             --efs-proxy-source DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import re
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

DPKG_STATUS = Path("/var/lib/dpkg/status")
DEBIAN_VERSION = Path("/etc/debian_version")
EFS_UTILS_CONSTANTS = Path("/usr/sbin/efs_utils_common/constants.py")
EFS_PROXY = Path("/usr/bin/efs-proxy")
EFS_UTILS_FILES = (Path("/usr/sbin/mount.efs"), Path("/usr/bin/amazon-efs-mount-watchdog"),
                   Path("/etc/amazon/efs-static-files/efs-utils.crt"))
Component = dict[str, Any]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _properties(**values: str) -> list[dict[str, str]]:
    return [{"name": f"efs-csi:{name.replace('_', '-')}", "value": value}
            for name, value in values.items() if value]


def dpkg_packages(status: Path = DPKG_STATUS) -> list[dict[str, str]]:
    """The installed packages of a dpkg status file: its stanzas whose Status ends 'installed'."""
    packages = []
    for stanza in status.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        if fields.get("Status", "").endswith(" installed"):
            packages.append(fields)
    return sorted(packages, key=lambda fields: fields["Package"])


def debian_components() -> tuple[Component, list[Component]]:
    release = DEBIAN_VERSION.read_text().strip()
    major = release.split(".")[0]
    system = {"type": "operating-system", "bom-ref": "os:debian", "name": "debian",
              "version": release}
    components = []
    for fields in dpkg_packages():
        name, version, arch = fields["Package"], fields["Version"], fields["Architecture"]
        purl = (f"pkg:deb/debian/{name}@{quote(version, safe='')}"
                f"?arch={arch}&distro=debian-{major}")
        component: Component = {"type": "library", "bom-ref": purl, "name": name,
                                "version": version, "purl": purl}
        source = fields.get("Source", "").split(" ")[0]
        component["properties"] = _properties(package_manager="dpkg",
                                              source_package=source if source != name else "")
        components.append(component)
    return system, components


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_components() -> list[Component]:
    components = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if not name:
            continue
        purl = f"pkg:pypi/{_normalized(name)}@{distribution.version}"
        component: Component = {"type": "library", "bom-ref": purl, "name": name,
                                "version": distribution.version, "purl": purl}
        expressions = distribution.metadata.get_all("License-Expression") or []
        if expressions:
            component["licenses"] = [{"expression": expressions[0]}]
        component["properties"] = _properties(package_manager="pip",
                                              location=str(Path(sys.prefix)))
        components[purl] = component
    return [components[purl] for purl in sorted(components)]


def _cargo_crates(lock: Path, root: str) -> list[Component]:
    crates = []
    for package in tomllib.loads(lock.read_text())["package"]:
        if package["name"] == root or "source" not in package:
            continue
        purl = f"pkg:cargo/{package['name']}@{package['version']}"
        crate: Component = {"type": "library", "bom-ref": purl, "name": package["name"],
                            "version": package["version"], "purl": purl}
        if "checksum" in package:
            crate["hashes"] = [{"alg": "SHA-256", "content": package["checksum"]}]
        crates.append(crate)
    return sorted(crates, key=lambda crate: crate["bom-ref"])


def efs_utils_components(tag: str, commit: str, tree: str,
                         proxy_source: Path | None) -> list[Component]:
    if not EFS_UTILS_CONSTANTS.exists():
        return []
    found = re.search(r'^VERSION = "([^"]+)"', EFS_UTILS_CONSTANTS.read_text(), re.MULTILINE)
    version = found.group(1) if found else "unknown"
    efs_utils: Component = {
        "type": "application", "bom-ref": "efs-utils", "name": "efs-utils",
        "version": version, "purl": f"pkg:github/aws/efs-utils@{tag or version}",
        "hashes": [{"alg": "SHA-256", "content": tree}] if tree else [],
        "properties": _properties(git_tag=tag, git_commit=commit, git_tree_sha256=tree),
        "components": [
            {"type": "file", "bom-ref": f"file:{path}", "name": str(path),
             "hashes": [{"alg": "SHA-256", "content": _sha256(path)}]}
            for path in EFS_UTILS_FILES if path.exists()],
    }
    if not efs_utils["hashes"]:
        del efs_utils["hashes"]
    components = [efs_utils]
    if EFS_PROXY.exists():
        proxy: Component = {"type": "application", "bom-ref": "efs-proxy", "name": "efs-proxy",
                            "version": version,
                            "hashes": [{"alg": "SHA-256", "content": _sha256(EFS_PROXY)}],
                            "properties": _properties(built_from="efs-utils", git_commit=commit,
                                                      path=str(EFS_PROXY))}
        if proxy_source is not None and (proxy_source / "Cargo.toml").exists():
            manifest = tomllib.loads((proxy_source / "Cargo.toml").read_text())["package"]
            proxy["version"] = manifest["version"]
            proxy["components"] = _cargo_crates(proxy_source / "Cargo.lock", manifest["name"])
        components.append(proxy)
    return components


def bom(image: str, tag: str = "", commit: str = "", tree: str = "",
        proxy_source: Path | None = None) -> dict[str, Any]:
    system, debian = debian_components()
    python = python_components()
    own = next((c["version"] for c in python if c["name"] == "efs-csi-core"), "unknown")
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "efs-csi docker/sbom.py"}]},
            "component": {"type": "container", "bom-ref": "image", "name": image,
                          "version": own},
        },
        "components": [system, *debian, *python,
                       *efs_utils_components(tag, commit, tree, proxy_source)],
    }
    content = json.dumps(document, sort_keys=True).encode()
    document["serialNumber"] = uuid.uuid5(uuid.NAMESPACE_URL,
                                          hashlib.sha256(content).hexdigest()).urn
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CycloneDX SBOM of this image")
    parser.add_argument("--image", required=True)
    parser.add_argument("--efs-utils-tag", default="")
    parser.add_argument("--efs-utils-commit", default="")
    parser.add_argument("--efs-utils-tree-sha256", default="")
    parser.add_argument("--efs-proxy-source", type=Path, default=None)
    args = parser.parse_args(argv)
    document = bom(args.image, args.efs_utils_tag, args.efs_utils_commit,
                   args.efs_utils_tree_sha256, args.efs_proxy_source)
    json.dump(document, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
