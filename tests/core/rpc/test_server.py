"""Where a binary serves: the endpoint forms. (The server's life on a real process, SIGTERM,
stale sockets: tests/integration/test_server_lifecycle.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from efs_csi.rpc.server import Endpoint, parse_endpoint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unix:///csi/csi.sock", Endpoint(path=Path("/csi/csi.sock"))),
        ("unix:/csi/csi.sock", Endpoint(path=Path("/csi/csi.sock"))),
        ("tcp://127.0.0.1:10000", Endpoint(host="127.0.0.1", port=10000)),
        ("tcp://[::1]:10000", Endpoint(host="::1", port=10000)),
    ],
)
def test_endpoints(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["", "unix://", "unix://relative", "tcp://host",
                                  "tcp://:80", "tcp://h:99999", "http://x:1", "/csi.sock"])
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        parse_endpoint(text)
