"""Smoke checks on the built images, run as the chart runs them.

Each test starts the real image with the docker engine of scripts/images; the container
settings (user, privileges, read-only root, volumes, command and args) come from the chart
rendered with real helm, so an image that only works with settings the chart does not give
fails here.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from testbed.pods import container, docker_command, docker_run_options, pod_spec, run_as
from tests.chart.render import render
from tests.images.engine import Engine
from tests.support.ci import REPO

# Size budget: what the images weighed before this rework, built on a Debian Python base
# (research/image-builds.md); both must stay below.
BUDGET_MB = {"controller": 275, "node": 345, "controller-efs": 345}
ROOT_DIR_EFS = ["controller.deleteAccessPointRootDir=true", "mountBackend=efs"]


@dataclass(frozen=True)
class Workload:
    """One image as one workload of the chart runs it."""

    target: str
    binary: str
    kind: str
    name: str
    sets: tuple[str, ...] = ()

    def spec(self) -> tuple[dict[str, Any], dict[str, Any]]:
        manifests = render(sets=[*self.sets, "region=us-east-1"])
        spec = pod_spec(manifests, self.kind, self.name)
        return spec, container(spec, "efs-plugin")


WORKLOADS = [
    Workload("controller", "efs-csi-controller", "Deployment", "efs-csi-controller"),
    Workload("node", "efs-csi-node", "DaemonSet", "efs-csi-node"),
    Workload("controller-efs", "efs-csi-controller", "Deployment", "efs-csi-controller",
             tuple(ROOT_DIR_EFS)),
]


def workload_id(workload: Workload) -> str:
    return workload.target


@pytest.mark.parametrize("workload", WORKLOADS, ids=workload_id)
def test_the_chart_picks_this_image(workload: Workload) -> None:
    _spec, plugin = workload.spec()
    assert plugin["image"].split("/")[-1].startswith(f"efs-csi-{workload.target}:")


@pytest.mark.parametrize(("target", "command"), [
    ("controller", ["efs-csi-controller", "--version"]),
    ("node", ["efs-csi-node", "--version"]),
    ("node", ["mount.efs", "--version"]),
    ("node", ["efs-proxy", "--help"]),  # the real efs-proxy has no --version
    ("node", ["stunnel", "-version"]),
    ("controller-efs", ["efs-csi-controller", "--version"]),
    ("controller-efs", ["mount.efs", "--version"]),
    ("controller-efs", ["efs-proxy", "--help"]),
], ids=lambda value: value if isinstance(value, str) else value[0])
def test_binaries_print_their_version(engine: Engine, target: str, command: list[str]) -> None:
    result = engine.run(target, *command[1:], entrypoint=command[0])
    output = result.stdout + result.stderr
    assert output.strip(), command
    if command[0].startswith("efs-csi"):
        from efs_csi import __version__

        assert __version__ in output


@pytest.mark.parametrize(("target", "own", "foreign"), [
    ("controller", "efs_csi_controller", ["efs_csi_node"]),
    # The node's EFS API client is the local backend's extra (NODE_EXTRAS=local), not the
    # production node's.
    ("node", "efs_csi_node", ["efs_csi_controller", "aiobotocore"]),
    ("controller-efs", "efs_csi_controller", ["efs_csi_node"]),
])
def test_each_image_holds_its_own_binary_and_not_the_other(engine: Engine, target: str,
                                                            own: str, foreign: list[str]
                                                            ) -> None:
    """One distribution per image (docker/venv.sh): the other binary's package, its script and
    the libraries only the other binary needs are absent."""
    script = ("import importlib.util, json, os\n"
              f"names = {[own, 'efs_csi', *foreign]!r}\n"
              "print(json.dumps({'modules': {n: importlib.util.find_spec(n) is not None "
              "for n in names}, 'scripts': sorted(f for f in os.listdir('/opt/efs-csi/bin') "
              "if f.startswith('efs-csi'))}))\n")
    found = json.loads(engine.run(target, "-c", script, entrypoint="python3").stdout)
    assert found["modules"] == {own: True, "efs_csi": True, **dict.fromkeys(foreign, False)}
    binary = own.replace("efs_csi_", "efs-csi-")
    assert found["scripts"] == [binary]


@pytest.mark.parametrize("target", ["node", "controller-efs"])
def test_mount_helpers_are_where_efs_utils_and_libmount_look(engine: Engine,
                                                              target: str) -> None:
    """/sbin stays bookworm's symlink, and every helper resolves through it.

    libmount (util-linux 2.38) runs /sbin/mount.<type>; efs-utils runs /sbin/mount.nfs4 and
    finds stunnel, efs-proxy and the watchdog on PATH. A real /sbin directory copied over the
    symlink would keep mount.efs and lose mount.nfs4.
    """
    script = (
        "set -e; test -L /sbin; test \"$(readlink /sbin)\" = usr/sbin; "
        "for f in /sbin/mount.efs /sbin/mount.nfs4 /usr/bin/efs-proxy "
        "/usr/bin/amazon-efs-mount-watchdog /usr/bin/tini; do test -x \"$f\" || "
        "{ echo missing $f; exit 1; }; done; "
        "for c in stunnel efs-proxy amazon-efs-mount-watchdog ps which nsenter openssl; do "
        "command -v \"$c\" >/dev/null || { echo no $c on PATH; exit 1; }; done; "
        "test -r /usr/sbin/efs_utils_common/__init__.py; "
        "test -r /etc/amazon/efs-static-files/efs-utils.conf; "
        "test -r /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem; "
        "head -1 /sbin/mount.efs; head -1 /usr/bin/amazon-efs-mount-watchdog")
    result = engine.run(target, "-c", script, entrypoint="sh")
    assert result.stdout.splitlines() == ["#!/opt/efs-csi/bin/python3"] * 2


def test_node_keeps_efs_utils_state_on_the_host(engine: Engine) -> None:
    result = engine.run("node", "-c", "readlink /etc/amazon/efs", entrypoint="sh")
    assert result.stdout.strip() == "/var/amazon/efs"
    spec, plugin = WORKLOADS[1].spec()
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounted = {m["mountPath"]: host_paths.get(m["name"]) for m in plugin["volumeMounts"]}
    assert mounted["/var/amazon/efs"] == "/var/amazon/efs"


@pytest.mark.parametrize("workload", WORKLOADS, ids=workload_id)
def test_image_user_is_the_user_the_chart_runs(engine: Engine, workload: Workload) -> None:
    spec, plugin = workload.spec()
    uid, gid = run_as(spec, plugin)
    configured = engine.inspect(workload.target)["Config"]["User"] or "0:0"
    assert configured == f"{uid}:{gid}"


@pytest.mark.parametrize("target", ["controller", "node", "controller-efs"])
def test_botocore_keeps_every_service_the_driver_and_efs_utils_call(engine: Engine,
                                                                    target: str) -> None:
    """The images cut botocore's models to a keep-list (docker/venv.sh): each client works."""
    script = ("import botocore.session\n"
              "s = botocore.session.get_session()\n"
              "for name in ('efs', 'sts', 'ec2', 'logs', 'sso', 'sso-oidc'):\n"
              "    s.create_client(name, region_name='us-east-1', aws_access_key_id='x',\n"
              "                    aws_secret_access_key='x')\n"
              "print(sorted(s.get_available_services()))\n")
    result = engine.run(target, "-c", script, entrypoint="python3")
    available = json.loads(result.stdout.replace("'", '"'))
    assert {"efs", "sts", "ec2", "logs"} <= set(available)
    assert len(available) < 10, "botocore's models were not cut"


# What each image's binary imports: its own package, the core, the serving stack and the
# libraries of its adapters (the node's Kubernetes client: its start-up helper process).
COMPILED = {"controller": ["efs_csi_controller", "aiobotocore", "kubernetes_asyncio"],
            "node": ["efs_csi_node", "kubernetes_asyncio", "botocore"],
            "controller-efs": ["efs_csi_controller", "aiobotocore", "kubernetes_asyncio"]}


# The interpreter's options every binary runs with: its console script asks for -OO
# (docker/venv.sh), and the venv holds bytecode of that level only.
RUNS_WITH = ["-OO"]
# Each image's binary, and what its start imports (the node's start-up helper's included);
# controller-efs runs the controller's.
STARTS = {"controller": ("efs-csi-controller",
                         "efs_csi_controller.app, efs_csi.adapters.aws, efs_csi.adapters.kube"),
          "node": ("efs-csi-node",
                   "efs_csi_node.app, efs_csi_node.startup_work, efs_csi.adapters.kube")}
STARTS["controller-efs"] = STARTS["controller"]


@pytest.mark.parametrize("target", ["controller", "node", "controller-efs"])
def test_every_module_ships_bytecode_valid_whatever_the_mtimes(engine: Engine,
                                                              target: str) -> None:
    """The first start is as fast as the next (docker/venv.sh compiles the venv): every module
    of the binary's packages has its .pyc, at the level the binary runs, in unchecked-hash mode
    (used without comparing the source's mtime, which the image layers need not keep)."""
    names = ["efs_csi", "grpclib", "betterproto2", "structlog", "prometheus_client",
             *COMPILED[target]]
    script = ("import importlib.util, json, pathlib, sys\n"
              f"names = {names!r}\n"
              "checked, missing, unchecked = 0, [], []\n"
              "for name in names:\n"
              "    root = pathlib.Path(importlib.util.find_spec(name).origin).parent\n"
              "    for source in root.rglob('*.py'):\n"
              "        checked += 1\n"
              "        cached = pathlib.Path(importlib.util.cache_from_source(str(source)))\n"
              "        if not cached.is_file():\n"
              "            missing.append(str(source))\n"
              "        elif int.from_bytes(cached.read_bytes()[4:8], 'little') != 1:\n"
              "            unchecked.append(str(source))\n"
              "print(json.dumps({'checked': checked, 'missing': missing[:20],\n"
              "                  'not_unchecked_hash': unchecked[:20]}))\n")
    found = json.loads(engine.run(target, *RUNS_WITH, "-c", script,
                                  entrypoint="python3").stdout)
    assert found["checked"] > 500, found
    assert found["missing"] == [], found
    assert found["not_unchecked_hash"] == [], found


@pytest.mark.parametrize("target", ["controller", "node", "controller-efs"])
def test_the_binary_runs_optimized_from_bytecode_of_that_level(engine: Engine,
                                                               target: str) -> None:
    """The binary's console script runs ``python -OO`` (docker/venv.sh: no docstrings, no
    asserts; idle memory 2.3 MiB less in the controller, 1.5 in the node: docs/performance.md),
    and every module its start loads, the standard library's included (the Dockerfile compiles
    it), has bytecode of that level: no start compiles any."""
    binary, imports = STARTS[target]
    interpreter = engine.run(
        target, "-c", f"print(open('/opt/efs-csi/bin/{binary}').readline())",
        entrypoint="python3").stdout.split()
    assert interpreter[0].startswith("#!/") and interpreter[1:] == RUNS_WITH, interpreter
    script = ("import json, os, sys\n"
              f"import {imports}\n"
              "cached = [m.__cached__ for m in list(sys.modules.values())\n"
              "          if getattr(m, '__cached__', None)]\n"
              "print(json.dumps({'optimize': sys.flags.optimize, 'loaded': len(cached),\n"
              "                  'missing': [c for c in cached if not os.path.isfile(c)]}))\n")
    found = json.loads(engine.run(target, *interpreter[1:], "-c", script,
                                  entrypoint=interpreter[0][2:]).stdout)
    assert found["optimize"] == 2, found
    assert found["loaded"] > 400, found
    assert found["missing"] == [], found


@pytest.mark.parametrize("target", ["controller", "node", "controller-efs"])
def test_image_is_smaller_than_before(engine: Engine, target: str) -> None:
    size_mb = engine.inspect(target)["Size"] / 1e6
    assert size_mb < BUDGET_MB[target], f"{target}: {size_mb:.1f} MB"


@pytest.fixture
def started(engine: Engine, request: pytest.FixtureRequest) -> Iterator[tuple[str, Workload]]:
    """The workload's image, started detached with the chart's settings on loopback only."""
    workload: Workload = request.param
    spec, plugin = workload.spec()
    fields = {"spec.nodeName": "smoke-node"}
    options = docker_run_options(spec, plugin, field_values=fields)
    args = docker_command(plugin, fields)
    # What a real cluster supplies: the zone (instance metadata or the Node's label), and a
    # metrics endpoint to probe /healthz on.
    if workload.binary == "efs-csi-node":
        args.append("--availability-zone=us-east-1a")
    args.append("--http-endpoint=127.0.0.1:9810")
    name = f"efs-csi-smoke-{workload.target}-{time.monotonic_ns()}"
    engine.docker("run", "-d", "--name", name, "--network", "none",
                  "-e", "AWS_EC2_METADATA_DISABLED=true", *options,
                  engine.image(workload.target), *args)
    try:
        yield name, workload
    finally:
        engine.docker("rm", "-f", name, check=False)


def container_healthz(engine: Engine, name: str, timeout: float = 60) -> str:
    probe = ("import sys, time, urllib.request\n"
             f"end = time.time() + {timeout}\n"
             "while True:\n"
             "    try:\n"
             "        print(urllib.request.urlopen('http://127.0.0.1:9810/healthz', timeout=2)"
             ".read().decode()); break\n"
             "    except OSError:\n"
             "        if time.time() > end: raise\n"
             "        time.sleep(0.2)\n")
    result = engine.docker("exec", name, "python3", "-c", probe, check=False,
                           timeout=timeout + 10)
    assert result.returncode == 0, (result.stderr, engine.docker("logs", name).stderr[-3000:])
    return result.stdout.strip()


def processes(engine: Engine, name: str) -> list[dict[str, Any]]:
    """pid, ppid, uid and command line of every process in the container (from /proc)."""
    script = ("import json, os\n"
              "out = []\n"
              "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
              "    try:\n"
              "        status = dict(l.split(':', 1) for l in open(f'/proc/{pid}/status'))\n"
              "        cmd = open(f'/proc/{pid}/cmdline').read().split('\\0')\n"
              "    except OSError:\n"
              "        continue\n"
              "    out.append({'pid': int(pid), 'ppid': int(status['PPid']),\n"
              "                'uid': int(status['Uid'].split()[0]), 'cmd': ' '.join(cmd)})\n"
              "print(json.dumps(out))\n")
    return json.loads(engine.docker("exec", name, "python3", "-c", script).stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("started", WORKLOADS, ids=workload_id, indirect=True)
def test_serves_healthz_runs_as_the_chart_says_and_exits_0_on_sigterm(
        engine: Engine, started: tuple[str, Workload]) -> None:
    name, workload = started
    assert container_healthz(engine, name) == "ok"
    spec, plugin = workload.spec()
    uid, _gid = run_as(spec, plugin)
    running = processes(engine, name)
    driver = [p for p in running if f"/opt/efs-csi/bin/{workload.binary} " in p["cmd"]]
    assert len(driver) == 1, running
    assert driver[0]["uid"] == uid
    if workload.target != "controller":
        # tini is PID 1 and reaps what efs-utils leaves behind; the watchdog runs beside.
        assert next(p for p in running if p["pid"] == 1)["cmd"].startswith("/usr/bin/tini")
        assert any("amazon-efs-mount-watchdog" in p["cmd"] for p in running), running
    engine.docker("stop", "--time", "40", name, timeout=60)
    state = json.loads(engine.docker("inspect", name).stdout)[0]["State"]
    logs = engine.docker("logs", name)
    assert state["ExitCode"] == 0, logs.stdout[-2000:] + logs.stderr[-2000:]


def test_dockerignore_keeps_the_context_small() -> None:
    """Only what the images need enters the build context (no .venv, .cache, tests)."""
    allowed = [line for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    assert "!efs_csi/" in allowed and "!docker/venv.sh" in allowed
    assert not any("tests" in line or ".cache" in line for line in allowed)


def test_the_only_image_pulled_is_base_image_so_one_digest_pins_them_all() -> None:
    """Every FROM is ${BASE_IMAGE} or a stage of the same Dockerfile: BASE_IMAGE pinned by
    digest (debian:bookworm-slim@sha256:...) pins everything the build pulls."""
    text = (REPO / "docker" / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE))
    sources = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    # A stage chosen by an argument (efs-proxy-${EFS_PROXY_FROM}) is one of the stages its
    # values name: source or prebuilt.
    chosen = {name.replace("${EFS_PROXY_FROM}", value) if "${EFS_PROXY_FROM}" in name else name
              for name in sources for value in ("source", "prebuilt")}
    assert sources and chosen <= stages | {"${BASE_IMAGE}"}, sources
    copied = set(re.findall(r"--from=([^\s,]+)", text))
    assert copied <= stages, copied - stages  # no COPY/RUN --mount from an outside image
    assert re.search(r"^ARG BASE_IMAGE=\S+$", text, re.MULTILINE)
