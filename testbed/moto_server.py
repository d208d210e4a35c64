"""moto's EFS API as a real HTTP server on loopback (aiobotocore cannot use moto's in-process
mock). One server per test session; its state is reset before every test that uses it.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass(frozen=True)
class MotoEndpoint:
    url: str

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def environment(self) -> dict[str, str]:
        """Environment that points an AWS SDK (ours, in a subprocess) at this server."""
        return {**CREDENTIALS, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": self.url, "AWS_EC2_METADATA_DISABLED": "true"}


@contextmanager
def running_moto() -> Iterator[MotoEndpoint]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield MotoEndpoint(f"http://{host}:{port}")
    finally:
        server.stop()


def create_file_system(endpoint: MotoEndpoint, *, one_zone: str | None = None) -> str:
    """Create a file system (and nothing else) with boto3; returns its id."""
    import boto3

    client = boto3.client("efs", region_name=REGION, endpoint_url=endpoint.url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    extra = {"AvailabilityZoneName": one_zone} if one_zone else {}
    reply = client.create_file_system(CreationToken=json.dumps(extra) + "token", **extra)
    return str(reply["FileSystemId"])
