"""The images' Python locks (docker/requirements/): they match what the pyproject files declare,
they pin the whole closure with hashes, and pip refuses one that is incomplete or tampered.

The table checks read the files only. The pip checks run the real pip (the one of this
virtualenv; the image's is Debian's, with the same hash-checking mode) against the package
index as the image build does, for the platform the images are built for, downloading every
file of the closure and checking its hash; a lock with one hash or one package removed, or one
hash changed, is refused.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.ci import REPO

LOCKS = REPO / "docker" / "requirements"
# lock -> (the distribution's pyproject, its extras); "build": the wheels' build backend
FLAVORS = {"controller": ("controller", ()), "node": ("node", ()),
           "node-local": ("node", ("local",)), "build": (None, ())}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:(?P<hash>[0-9a-f]{64})")


def _toml(path: Path) -> dict[str, object]:
    with path.open("rb") as file:
        return tomllib.load(file)


def declared(flavor: str) -> list[Requirement]:
    """What the pyproject files say the flavor needs (the driver's own distributions replaced
    by what they require), read here independently of scripts/images/lock.py."""
    binary, extras = FLAVORS[flavor]
    if binary is None:
        return [Requirement(text) for path in ("pyproject.toml", "controller/pyproject.toml",
                                               "node/pyproject.toml")
                for text in _toml(REPO / path)["build-system"]["requires"]]  # type: ignore[index]
    core = _toml(REPO / "pyproject.toml")["project"]
    own = _toml(REPO / binary / "pyproject.toml")["project"]
    texts = list(own["dependencies"])  # type: ignore[index]
    for extra in extras:
        texts += own["optional-dependencies"][extra]  # type: ignore[index]
    found = []
    for text in texts:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == "efs-csi-core":
            found += [Requirement(t) for t in core["dependencies"]]  # type: ignore[index]
            for extra in requirement.extras:
                found += [Requirement(t)
                          for t in core["optional-dependencies"][extra]]  # type: ignore[index]
        else:
            found.append(requirement)
    return found


def locked(flavor: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of a lock file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in (LOCKS / f"{flavor}.txt").read_text().splitlines():
        pin = _PIN.match(line)
        if pin:
            current = canonicalize_name(pin["name"])
            assert current not in entries, f"{flavor}: {current} twice"
            entries[current] = (pin["version"], [])
            continue
        found = _HASH.search(line)
        if found and current is not None:
            entries[current][1].append(found["hash"])
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{flavor}: a line that is neither a pin nor a hash: {line!r}")
    return entries


@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_declared_requirement_is_locked_at_a_version_it_allows(flavor: str) -> None:
    entries = locked(flavor)
    for requirement in declared(flavor):
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{flavor}: {requirement} is not locked (run make lock)"
        version = entries[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{flavor}: pyproject wants {requirement}, the lock has {version} (run make lock)")
        for extra in requirement.extras:  # e.g. betterproto2[grpclib] brings grpclib
            assert extra in entries or any(extra in key for key in entries), (flavor, extra)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_locked_package_is_exact_and_hashed_and_none_is_the_drivers(flavor: str) -> None:
    entries = locked(flavor)
    assert len(entries) >= 3
    for name, (version, hashes) in entries.items():
        assert hashes, f"{flavor}: {name}=={version} has no hash"
        assert not name.startswith("efs-csi"), f"{flavor}: the driver's {name} is built, " \
                                               "not locked"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_the_header_lists_the_declared_requirements(flavor: str) -> None:
    """The lock says what it was made from, and that is still what pyproject declares."""
    header = [line[4:] for line in (LOCKS / f"{flavor}.txt").read_text().splitlines()
              if line.startswith("#   ")]
    assert sorted(header) == sorted({str(r) for r in declared(flavor)}), \
        f"{flavor}: the lock was made from other requirements (run make lock)"


def test_each_image_flavor_has_a_lock() -> None:
    """venv.sh picks <binary>[-<extras>].txt: every extra of the node can be built."""
    node_extras = _toml(REPO / "node" / "pyproject.toml")["project"]["optional-dependencies"]
    wanted = {"controller", "node", "build", *(f"node-{extra}" for extra in node_extras)}  # type: ignore[union-attr]
    assert {path.stem for path in LOCKS.glob("*.txt")} == wanted


# pip's own verdict -------------------------------------------------------------------------

# The images' platform: Debian bookworm's glibc 2.36 on x86_64, CPython 3.11. pip takes the
# manylinux tags it may use one by one (it does not derive the older ones from the newest).
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)] + \
    ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def pip_download(lock: Path, destination: Path) -> subprocess.CompletedProcess[str]:
    """What the image build does with a lock (docker/venv.sh), for the images' platform:
    every file downloaded and its hash checked, every dependency required to be in the lock."""
    platforms = [option for tag in PLATFORMS for option in ("--platform", tag)]
    return subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--require-hashes", "--only-binary", ":all:", *platforms,
         "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
         "--dest", str(destination), "-r", str(lock)],
        capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("flavor", FLAVORS)
def test_pip_installs_the_lock_as_it_is(flavor: str, tmp_path: Path) -> None:
    result = pip_download(LOCKS / f"{flavor}.txt", tmp_path / "files")
    assert result.returncode == 0, result.stderr[-3000:]
    downloaded = {canonicalize_name(path.name.split("-")[0])
                  for path in (tmp_path / "files").iterdir()}
    assert downloaded == set(locked(flavor)), "pip fetched other packages than the lock's"


def _without(text: str, name: str, *, hashes_only: bool) -> str:
    """The lock text with one package's hashes (or the whole entry) left out."""
    lines, out, skipping = text.splitlines(), [], False
    for line in lines:
        pin = _PIN.match(line)
        if pin:
            skipping = canonicalize_name(pin["name"]) == name
            if skipping and hashes_only:
                out.append(f"{pin['name']}=={pin['version']}")
                continue
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize(("case", "edit", "refusal"), [
    ("a package without its hashes",
     lambda text: _without(text, "multidict", hashes_only=True),
     "Hashes are required in --require-hashes mode"),
    ("an indirect dependency missing",
     lambda text: _without(text, "multidict", hashes_only=False),
     "all requirements must have their versions pinned with =="),
    ("a hash that is not the file's",
     lambda text: re.sub(r"(six==[^\n]*\n(?:\s+--hash=sha256:[0-9a-f]{64}[ \\]*\n)*)",
                         lambda m: re.sub(r"[0-9a-f]{64}", "0" * 64, m.group(1)), text),
     "DO NOT MATCH THE HASHES"),
])
def test_pip_refuses_an_incomplete_or_tampered_lock(case: str, edit: object, refusal: str,
                                                     tmp_path: Path) -> None:
    original = (LOCKS / "node.txt").read_text()
    changed = edit(original)  # type: ignore[operator]
    assert changed != original, f"{case}: the edit changed nothing"
    lock = tmp_path / "node.txt"
    lock.write_text(changed)
    result = pip_download(lock, tmp_path / "files")
    assert result.returncode != 0, f"pip accepted {case}"
    assert refusal in result.stderr, result.stderr[-3000:]
