"""Regenerate the betterproto2 CSI code from protos/csi.proto, or check it has not drifted.

    python protos/generate.py          # rewrite efs_csi/csi/_generated
    python protos/generate.py --check  # exit 1 if the committed code differs from a fresh run

The proto's checksum is verified against protos/VERSION first, so a hand-edited proto fails
loudly instead of silently producing different code.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import os
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
