"""``testbed.chart.container_env``, which the start-up benchmark runs the controller with, is the
environment the chart really gives the container: the same as the tests' own rendering
(``tests/chart/render``), literal values only."""

from __future__ import annotations

import pytest

from testbed.chart import container_env
from testbed.pods import container, pod_spec
from tests.chart.render import render


@pytest.mark.slow  # helm runs
def test_the_benchmarks_chart_env_is_the_charts() -> None:
    plugin = container(pod_spec(render(sets=["region=us-east-1"]), "Deployment",
                                "efs-csi-controller"), "efs-plugin")
    literal = {item["name"]: str(item["value"]) for item in plugin["env"] if "value" in item}
    env = container_env("Deployment", "efs-csi-controller")
    assert env == literal
    assert env["SSL_CERT_FILE"] == "/dev/null" and env["MALLOC_ARENA_MAX"] == "1"
