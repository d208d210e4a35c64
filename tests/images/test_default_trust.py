"""The controller's default TLS trust in its image, with the chart's environment: OpenSSL's
default CA *file* is not read (``SSL_CERT_FILE=/dev/null``, which spares the controller 1.6 MiB
and 55 ms: aiohttp parses that file twice at import), yet a certificate authority the image's
own ``update-ca-certificates`` installs is trusted by ``ssl.create_default_context()``, found in
the hashed directory ``/etc/ssl/certs`` when the handshake asks; a server of a CA it never
installed is still refused.

Real parts throughout: the built images, their ``update-ca-certificates`` and OpenSSL, a TLS
server on the container's loopback, certificates made by openssl (``testbed.datapath.tls``).
The container runs as root (installing a CA needs it), with the chart's environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.datapath.tls import make_ca
from tests.images.engine import Engine
from tests.images.test_images import WORKLOADS, Workload, workload_id

NAME = "trust.efs-csi.test"

# Inside the container: install the trusted CA as an operator's image would, then let the
# default context verify a server of each CA on loopback.
SCRIPT = f"""
import json, os, shutil, socket, ssl, subprocess, threading
shutil.copy("/certs/trusted/ca.pem", "/usr/local/share/ca-certificates/efs-csi-test.crt")
subprocess.run(["update-ca-certificates"], check=True, capture_output=True)

def serve(listener, context):
    connection, _ = listener.accept()
    try:
        with context.wrap_socket(connection, server_side=True) as tls:
            tls.sendall(b"ok")
    except (ssl.SSLError, OSError):
        pass

def handshake(ca):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(f"/certs/{{ca}}/{NAME}.pem", f"/certs/{{ca}}/{NAME}.key")
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=serve, args=(listener, server))
    thread.start()
    client = ssl.create_default_context()
    loaded = client.cert_store_stats()["x509_ca"]
    try:
        with socket.create_connection(listener.getsockname()) as raw:
            with client.wrap_socket(raw, server_hostname="{NAME}") as tls:
                outcome = tls.recv(2).decode()
    except ssl.SSLCertVerificationError as exc:
        outcome = "refused: " + exc.verify_message
    thread.join()
    listener.close()
    return {{"loaded_before": loaded, "outcome": outcome}}

print(json.dumps({{"SSL_CERT_FILE": os.environ.get("SSL_CERT_FILE"),
                  "trusted": handshake("trusted"), "untrusted": handshake("untrusted")}}))
"""


@pytest.mark.parametrize("workload", [w for w in WORKLOADS if w.kind == "Deployment"],
                         ids=workload_id)
def test_the_default_trust_comes_from_the_ca_directory_without_the_ca_file(
        engine: Engine, workload: Workload, tmp_path: Path) -> None:
    for ca in ("trusted", "untrusted"):
        made = make_ca(tmp_path / ca, [NAME])
        made.certificates[NAME].key.chmod(0o644)  # read by the container's server
    _, plugin = workload.spec()
    chart_env = [option for item in plugin.get("env", []) if "value" in item
                 for option in ("-e", f"{item['name']}={item['value']}")]
    result = engine.run(workload.target, "-c", SCRIPT, entrypoint="python3", options=[
        "--user", "0:0", "-v", f"{tmp_path}:/certs:ro", *chart_env])
    found = json.loads(result.stdout)
    assert found["SSL_CERT_FILE"] == "/dev/null"  # the chart's
    # Nothing parsed up front: the CA file was not read...
    assert found["trusted"]["loaded_before"] == 0
    # ...and trust holds all the same, from the directory, while verification stays on.
    assert found["trusted"]["outcome"] == "ok", found
    assert found["untrusted"]["outcome"].startswith("refused: "), found
