"""Regenerate the betterproto2 CSI code from protos/csi.proto, or check it has not drifted.

    python protos/generate.py          # rewrite efs_csi/csi/_generated
    python protos/generate.py --check  # exit 1 if the committed code differs from a fresh run

The proto's checksum is verified against protos/VERSION first, so a hand-edited proto fails
loudly instead of silently producing different code.

csi.proto imports descriptor.proto (for its field options), wrappers.proto and
timestamp.proto, and the compiler writes every type of the three into one module, 64 of
them; the CSI messages use three. Each generated message is a dataclass built when its
module is imported, in both binaries before they serve: the types nothing references are
left out of the written module (``prune_unreferenced``), the same way on every run, so
``--check`` still compares against a fresh run.
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "protos" / "csi.proto"
VERSION_FILE = ROOT / "protos" / "VERSION"
OUTPUT = ROOT / "efs_csi" / "csi" / "_generated"
OPTIONS = "client_generation=async,server_generation=async"
#: The well-known types' module, and the module whose references decide what it keeps.
WELL_KNOWN = Path("google") / "protobuf" / "__init__.py"
CSI_MODULE = Path("csi") / "v1" / "__init__.py"
#: How the CSI module names a well-known type.
WELL_KNOWN_REFERENCE = re.compile(r"__google__protobuf__\.(\w+)")


def recorded_checksum() -> str:
    for line in VERSION_FILE.read_text().splitlines():
        if line.startswith("csi_proto_sha256="):
            return line.split("=", 1)[1].strip()
    raise SystemExit(f"{VERSION_FILE}: no csi_proto_sha256 line")


def verify_proto() -> None:
    actual = hashlib.sha256(PROTO.read_bytes()).hexdigest()
    expected = recorded_checksum()
    if actual != expected:
        raise SystemExit(f"{PROTO}: sha256 {actual} differs from the recorded {expected}")


def generate_into(directory: Path) -> None:
    # The plugin is looked up on PATH; put this interpreter's scripts directory first.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"--python_betterproto2_out={directory}",
            f"--python_betterproto2_opt={OPTIONS}",
            PROTO.name,
        ],
        check=False, env=env, cwd=PROTO.parent, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"protoc failed ({result.returncode}):\n{result.stderr}")


def _top_level_types(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _registered_type(node: ast.stmt) -> str | None:
    """The type a ``default_message_pool.register_message(package, name, Type)`` statement
    registers, or None for any other statement."""
    if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func) == "default_message_pool.register_message"
            and isinstance(node.value.args[-1], ast.Name)):
        return node.value.args[-1].id
    return None


def kept_types(source: str, roots: set[str]) -> set[str]:
    """``roots`` and every type of ``source`` they reference, directly or through others (a
    word match over each class's source, annotations in quotes included: keeping one type too
    many is harmless, one too few is not)."""
    types = _top_level_types(ast.parse(source))
    missing = roots - types.keys()
    if missing:
        raise SystemExit(f"{WELL_KNOWN}: no type {sorted(missing)} referenced by {CSI_MODULE}")
    kept: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        kept.add(name)
        body = ast.get_source_segment(source, types[name]) or ""
        pending.extend(other for other in types if other not in kept
                       and re.search(rf"\b{other}\b", body))
    return kept


def prune_unreferenced(source: str, keep: set[str]) -> str:
    """``source`` without the classes not in ``keep``, their registrations in the message
    pool and their names in ``__all__``; every other line as the compiler wrote it."""
    tree = ast.parse(source)
    dropped_lines: set[int] = set()
    for node in tree.body:
        name = node.name if isinstance(node, ast.ClassDef) else _registered_type(node)
        if name is None or name in keep:
            continue
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        assert node.end_lineno is not None
        dropped_lines.update(range(first, node.end_lineno + 1))
    exported = next(node for node in tree.body if isinstance(node, ast.Assign)
                    and ast.unparse(node.targets[0]) == "__all__")
    assert isinstance(exported.value, ast.Tuple)
    for element in exported.value.elts:
        if isinstance(element, ast.Constant) and element.value not in keep:
            dropped_lines.add(element.lineno)
    lines = [line for number, line in enumerate(source.splitlines(), start=1)
             if number not in dropped_lines]
    # Two blank lines between top-level statements, as before, however many were dropped.
    return re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines)).rstrip("\n") + "\n"


def prune_well_known_types(directory: Path) -> None:
    csi_source = (directory / CSI_MODULE).read_text()
    well_known = directory / WELL_KNOWN
    source = well_known.read_text()
    roots = set(WELL_KNOWN_REFERENCE.findall(csi_source))
    well_known.write_text(prune_unreferenced(source, kept_types(source, roots)))


def differences(left: Path, right: Path) -> list[str]:
    found: list[str] = []
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])

    def walk(cmp: filecmp.dircmp[str], prefix: str) -> None:
        found.extend(f"{prefix}{name}: only in fresh output" for name in cmp.left_only)
        found.extend(f"{prefix}{name}: only in committed code" for name in cmp.right_only)
        found.extend(f"{prefix}{name}: differs" for name in cmp.diff_files)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(comparison, "")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed code drifts")
    args = parser.parse_args()
    verify_proto()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "_generated"
        fresh.mkdir()
        generate_into(fresh)
        prune_well_known_types(fresh)
        if args.check:
            if not OUTPUT.is_dir():
                print(f"{OUTPUT} is missing; run python protos/generate.py", file=sys.stderr)
                return 1
            drift = differences(fresh, OUTPUT)
            if drift:
                print("generated CSI code drifted from protos/csi.proto:", file=sys.stderr)
                print("\n".join(f"  {line}" for line in drift), file=sys.stderr)
                return 1
            print("generated CSI code matches protos/csi.proto")
            return 0
        shutil.rmtree(OUTPUT, ignore_errors=True)
        shutil.copytree(fresh, OUTPUT)
        print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
