"""The chart's alerts and dashboard: off by default, and when on, a PrometheusRule and a
ConfigMap as the Prometheus Operator and Grafana's dashboard sidecar pick them up. (What the
alerts and the dashboard do is tests/alerts'.)"""

from __future__ import annotations

import json

from tests.chart.render import NAMESPACE, find, render


def test_off_by_default() -> None:
    kinds = {(m["kind"], m["metadata"]["name"]) for m in render()}
    assert ("PrometheusRule", "efs-csi") not in kinds
    assert ("ConfigMap", "efs-csi-dashboard") not in kinds


def test_the_prometheus_rule_carries_its_selector_labels_and_every_alert() -> None:
    manifests = render(sets=["prometheusRule.enabled=true",
                             "prometheusRule.labels.release=kube-prometheus-stack"])
    rule = find(manifests, "PrometheusRule", "efs-csi")
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert len(alerts) == 11
    assert all(r["labels"]["severity"] in {"critical", "warning"} for r in alerts)


def test_the_dashboard_config_map_is_labelled_for_grafanas_sidecar() -> None:
    manifests = render(sets=["dashboard.enabled=true", "dashboard.namespace=monitoring",
                             "dashboard.annotations.grafana_folder=Storage"])
    config_map = find(manifests, "ConfigMap", "efs-csi-dashboard")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Storage"}
    (name, text) = next(iter(config_map["data"].items()))
    assert name.endswith(".json")
    dashboard = json.loads(text)
    assert dashboard["uid"] == "efs-csi-driver"
    assert "__NODE_JOB__" not in text and "__CONTROLLER_JOB__" not in text
