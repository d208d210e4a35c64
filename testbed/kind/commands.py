"""The command-line tools the flow drives, as a user drives them: kubectl, helm, kind and
docker, run as subprocesses with a time limit each. A failing command raises ``CommandFailed``
with the command and what it printed, so a failed step says what went wrong."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class CommandFailed(Exception):
    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        super().__init__(f"{' '.join(argv)} exited {returncode}: {output.strip()[-2000:]}")
        self.returncode = returncode
        self.output = output


@dataclass(frozen=True)
class Tools:
    """The cluster's name and where the tools are (names on PATH by default)."""

    cluster: str
    kubectl_path: str = "kubectl"
    helm_path: str = "helm"
    kind_path: str = "kind"
    docker_path: str = "docker"

    def run(self, argv: Sequence[str], *, stdin: str | None = None, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                                    timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise CommandFailed(argv, -1, f"no answer within {timeout}s") from exc
        if check and result.returncode != 0:
            raise CommandFailed(argv, result.returncode, result.stdout + result.stderr)
        return result

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120,
                check: bool = True) -> str:
        return self.run([self.kubectl_path, *args], stdin=stdin, timeout=timeout,
                        check=check).stdout

    def get(self, *args: str, timeout: float = 60) -> Any:
        """``kubectl get ... -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json", timeout=timeout))

    def apply(self, objects: Iterable[Mapping[str, Any]], timeout: float = 120) -> None:
        manifest = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest), timeout=timeout)

    def helm(self, *args: str, timeout: float = 600) -> str:
        return self.run([self.helm_path, *args], timeout=timeout).stdout

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return self.run([self.docker_path, *args], timeout=timeout, check=check).stdout

    def on_node(self, node: str, *argv: str, timeout: float = 60, check: bool = True) -> str:
        """Run a command in a kind node (a container of the cluster's Docker engine)."""
        return self.docker("exec", node, *argv, timeout=timeout, check=check)

    def kind(self, *args: str, timeout: float = 600) -> str:
        return self.run([self.kind_path, *args], timeout=timeout).stdout
