"""The in-cluster EFS API (moto, kind/values.yaml's ``efs-api`` Service), reached as a user
reaches it: ``kubectl port-forward`` to a local port, then boto3. Only the flow's own setup and
checks use it; the driver talks to it inside the cluster."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from testbed.kind.commands import Tools

REGION = "us-east-1"


@contextmanager
def port_forward(tools: Tools, port: int, timeout: float = 60) -> Iterator[str]:
    """Forward 127.0.0.1:``port`` to the efs-api Service; yields the endpoint URL."""
    process = subprocess.Popen(
        [tools.kubectl_path, "-n", "kube-system", "port-forward", "service/efs-api",
         f"{port}:5000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except OSError:
                if process.poll() is not None:
                    said = process.stderr.read() if process.stderr else ""
                    raise RuntimeError(f"kubectl port-forward exited: {said}") from None
                if time.monotonic() > end:
                    raise TimeoutError(f"no EFS API on {url} within {timeout}s") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class EfsApi:
    """A boto3 EFS client on the forwarded endpoint, with the calls the flow needs."""

    endpoint: str

    def __post_init__(self) -> None:
        import boto3

        # moto accepts any credentials; these are its documented fakes.
        self.client: Any = boto3.client(
            "efs", region_name=REGION, endpoint_url=self.endpoint,
            aws_access_key_id="testing", aws_secret_access_key="testing")

    def file_system(self, token: str, zone: str | None = None) -> str:
        """The file system made with ``token``, created on the first run only: a second run
        finds the first one's instead of failing with FileSystemAlreadyExists."""
        found = self.client.describe_file_systems(CreationToken=token)["FileSystems"]
        if found:
            return str(found[0]["FileSystemId"])
        extra = {"AvailabilityZoneName": zone} if zone else {}
        try:
            return str(self.client.create_file_system(CreationToken=token, **extra)
                       ["FileSystemId"])
        except self.client.exceptions.FileSystemAlreadyExists as exists:  # made meanwhile
            return str(exists.response["FileSystemId"])

    def access_points(self, file_system_id: str) -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = []
        kwargs: dict[str, str] = {"FileSystemId": file_system_id}
        while True:
            page = self.client.describe_access_points(**kwargs)
            points += page["AccessPoints"]
            if not page.get("NextToken"):
                return points
            kwargs["NextToken"] = page["NextToken"]

    def access_point(self, access_point_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client.describe_access_points(
            AccessPointId=access_point_id)["AccessPoints"][0]
        return found

    def create_access_point(self, file_system_id: str, path: str, uid: int, gid: int) -> str:
        reply = self.client.create_access_point(
            FileSystemId=file_system_id, PosixUser={"Uid": uid, "Gid": gid},
            RootDirectory={"Path": path, "CreationInfo": {
                "OwnerUid": uid, "OwnerGid": gid, "Permissions": "755"}})
        return str(reply["AccessPointId"])

    def delete_access_point(self, access_point_id: str) -> None:
        self.client.delete_access_point(AccessPointId=access_point_id)
