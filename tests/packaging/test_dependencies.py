"""Each distribution declares what it imports, and only that (read from the code itself).

- efs-csi-core declares what the core imports outside its adapters; its extras declare what
  each adapter imports ([aws]: efs_csi.adapters.aws, [kube]: efs_csi.adapters.kube).
- A binary imports no third-party library the core does not bring; the core extras it asks for
  are the adapters it builds. An adapter imported when the binary is needs the extra
  unconditionally; one imported only lazily either sits behind an extra of the binary's own
  (the node's EFS API client, for the local backend) or is always there and imported late for
  start-up time and memory (the controller's clients; the Kubernetes client of the node's
  start-up helper process: bench/startup.py).
- What is declared without being imported says why, here (``NOT_IMPORTED``).

The generated CSI code is left out: its imports are betterproto2's own runtime.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.packaging.test_versions import project
from tests.support.ci import REPO

FIRST_PARTY = {"efs_csi", "efs_csi_controller", "efs_csi_node"}
PACKAGES = {"efs-csi-core": REPO / "efs_csi", "efs-csi-controller": REPO / "controller" /
            "efs_csi_controller", "efs-csi-node": REPO / "node" / "efs_csi_node"}
ADAPTERS = {"aws": "efs_csi.adapters.aws", "kube": "efs_csi.adapters.kube"}
# Declared but not imported by the driver, and why.
NOT_IMPORTED = {
    # efs-utils' mount.efs and watchdog run under the node's interpreter and import it.
    ("efs-csi-node", "botocore"),
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> set[str]:
    return {canonical(re.split(r"[\[=<>~ ;]", requirement, maxsplit=1)[0])
            for requirement in requirements}


def python_files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*.py"):
        if "_generated" not in path.parts:
            yield path


def imported(paths: list[Path], *, top_level_only: bool = False) -> set[str]:
    """Module names imported by ``paths`` (absolute imports only)."""
    names: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        for node in nodes:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return names


def third_party(modules: set[str]) -> set[str]:
    """The distributions that provide ``modules`` (stdlib and the driver left out)."""
    providers = importlib.metadata.packages_distributions()
    found = set()
    for module in modules:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in FIRST_PARTY:
            continue
        assert top in providers, f"no installed distribution provides {top}"
        found.update(canonical(name) for name in providers[top])
    return found


def core_extras_asked(requirements: list[str]) -> set[str]:
    extras: set[str] = set()
    for requirement in requirements:
        asked = re.match(r"efs-csi-core\[([a-z,]+)\]", requirement)
        if asked:
            extras.update(asked.group(1).split(","))
    return extras


def test_the_core_declares_what_it_and_each_adapter_import() -> None:
    meta = project(REPO)
    files = list(python_files(PACKAGES["efs-csi-core"]))
    # An adapter is a module (adapters/kube.py) or a package (adapters/aws/).
    adapter_files = {extra: [p for p in files if "adapters" in p.parts and (
                         (p.stem == extra and p.parent.name == "adapters")
                         or extra in p.parts[p.parts.index("adapters") + 1:-1])]
                     for extra in ADAPTERS}
    outside = [p for p in files if "adapters" not in p.parts]
    base = declared(meta["dependencies"])
    assert third_party(imported(outside)) == base
    for extra, paths in adapter_files.items():
        assert paths, extra
        assert third_party(imported(paths)) - base == declared(
            meta["optional-dependencies"][extra]), extra


def test_each_binary_asks_the_core_for_the_adapters_it_builds_and_nothing_else() -> None:
    core = project(REPO)
    for name in ("efs-csi-controller", "efs-csi-node"):
        meta = project(PACKAGES[name].parent)
        files = list(python_files(PACKAGES[name]))
        modules = imported(files)
        at_import = imported(files, top_level_only=True)
        base_extras = core_extras_asked(meta["dependencies"])
        optional = meta.get("optional-dependencies", {})
        all_extras = base_extras | {e for reqs in optional.values()
                                    for e in core_extras_asked(reqs)}
        # What the binary imports itself comes with the core it asks for.
        provided = declared(core["dependencies"]) | {
            d for extra in all_extras for d in declared(core["optional-dependencies"][extra])}
        assert third_party(modules) <= provided, name
        # An adapter imported when the binary is comes with the extras asked unconditionally.
        assert {e for e, m in ADAPTERS.items() if m in at_import} <= base_extras, name
        assert all_extras == {e for e, m in ADAPTERS.items() if m in modules}, name
        own = declared([r for r in meta["dependencies"] if not r.startswith("efs-csi-")])
        unused = {d for d in own if (name, d) not in NOT_IMPORTED} - third_party(modules)
        assert not unused, f"{name} declares {unused} without importing it"
