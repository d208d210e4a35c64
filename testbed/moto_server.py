"""moto's EFS API as a real HTTP server on loopback (aiobotocore cannot use moto's in-process
mock). One server per test session; its state is reset before every test that uses it.

Tests run it in a thread of their own process. Benchmarks run it in a process of its own
(``own_process=True``): in one interpreter with the load generator and the EFS proxy, a
burst's rate is set by that interpreter (about 6 ms of its CPU per delete, one core, against
the controller's 2 ms), not by the controller under test; EFS is not in the client's process
either.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
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


#: The server in a process of its own: it prints its port, then serves until its standard
#: input closes (so it cannot outlive the process that started it).
_OWN_PROCESS = textwrap.dedent("""
    import logging, sys
    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()
    server.stop()
""")


@contextmanager
def running_moto(*, own_process: bool = False) -> Iterator[MotoEndpoint]:
    if own_process:
        with _moto_process() as endpoint:
            yield endpoint
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield MotoEndpoint(f"http://{host}:{port}")
    finally:
        server.stop()


@contextmanager
def _moto_process() -> Iterator[MotoEndpoint]:
    with subprocess.Popen([sys.executable, "-c", _OWN_PROCESS], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as process:
        assert process.stdin is not None and process.stdout is not None
        try:
            port = process.stdout.readline().strip()
            if not port.isdigit():
                raise RuntimeError(f"moto's server did not start (exit {process.wait(10)})")
            yield MotoEndpoint(f"http://127.0.0.1:{port}")
        finally:
            process.stdin.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def create_file_system(endpoint: MotoEndpoint, *, one_zone: str | None = None) -> str:
    """Create a file system (and nothing else) with boto3; returns its id."""
    import boto3

    client = boto3.client("efs", region_name=REGION, endpoint_url=endpoint.url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    extra = {"AvailabilityZoneName": one_zone} if one_zone else {}
    reply = client.create_file_system(CreationToken=json.dumps(extra) + "token", **extra)
    return str(reply["FileSystemId"])
