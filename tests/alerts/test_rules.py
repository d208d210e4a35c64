"""The chart's alerts, checked by Debian's promtool: the rules as helm renders them are valid
(``promtool check rules``), and every alert fires on the series that should fire it and stays
silent on healthy ones (``promtool test rules``, tests/alerts/rules_test.yaml). Each alert has
a severity, a summary and a runbook section in docs/troubleshooting.md; broken alerts (one that
never fires, one that always does) fail the unit tests, so they can fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.rules import (
    RuleGroups,
    alerting_rules,
    promtool,
    rendered_groups,
    scaled,
    seconds,
    write_rule_file,
)
from tests.support.ci import REPO

pytestmark = pytest.mark.slow  # helm and promtool are processes

UNIT_TESTS = Path(__file__).parent / "rules_test.yaml"
RUNBOOKS = REPO / "docs" / "troubleshooting.md"
SEVERITIES = {"critical", "warning", "info"}


@pytest.fixture(scope="module")
def groups() -> RuleGroups:
    return rendered_groups()


def run_unit_tests(groups: RuleGroups, directory: Path) -> subprocess.CompletedProcess[str]:
    write_rule_file(groups, directory / "rules.yaml")
    shutil.copy(UNIT_TESTS, directory / "rules_test.yaml")
    return subprocess.run([promtool(), "test", "rules", "rules_test.yaml"], cwd=directory,
                          capture_output=True, text=True, timeout=120)


def failed_alerts(output: str) -> set[str]:
    return set(re.findall(r"alertname: (\w+),", output))


def names(groups: RuleGroups) -> set[str]:
    return {rule["alert"] for rule in alerting_rules(groups)}


def test_promtool_checks_the_rendered_rules(groups: RuleGroups, tmp_path: Path) -> None:
    rules = write_rule_file(groups, tmp_path / "rules.yaml")
    result = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(list(alerting_rules(groups)))} rules found" in result.stdout


def test_every_alert_passes_its_promtool_unit_tests(groups: RuleGroups, tmp_path: Path) -> None:
    result = run_unit_tests(groups, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_case_and_a_silent_case(groups: RuleGroups) -> None:
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing == names(groups), "alerts without a case where they fire"
    # Silent: an empty expectation, or healthy series beside the firing ones in the same case
    # (an alert firing for one instance only, e.g. one node of three).
    assert silent | _partly_silent(cases) >= names(groups), "alerts never shown silent"


def _partly_silent(cases: list[dict[str, Any]]) -> set[str]:
    """Alerts whose firing case also holds series of another instance or file system that
    must not fire (the expected alerts name fewer of them than the input has)."""
    found = set()
    for case in cases:
        keys = {_subject(series["series"]) for series in case["input_series"]}
        for check in case["alert_rule_test"]:
            expected = {_subject_of(alert["exp_labels"]) for alert in check.get("exp_alerts", [])}
            if expected and len(keys - {""}) > len(expected):
                found.add(check["alertname"])
    return found


_SUBJECT_LABELS = ("instance", "file_system_id", "gid_range", "volume_id", "method", "request")


def _subject(series: str) -> str:
    labels = dict(re.findall(r'(\w+)="([^"]*)"', series))
    return _subject_of(labels)


def _subject_of(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={labels[key]}" for key in _SUBJECT_LABELS if key in labels)


@pytest.mark.parametrize("broken", ["never fires", "always fires"])
def test_broken_alerts_fail_their_unit_tests(groups: RuleGroups, tmp_path: Path,
                                             broken: str) -> None:
    """The unit tests can fail: with every alert's expression replaced by one that never fires
    (or always fires), each alert's own cases fail."""
    expression = "vector(1) == 0" if broken == "never fires" else "vector(1)"
    mutated = [{**group, "rules": [{**rule, "expr": expression}
                                   for rule in group["rules"]]} for group in groups]
    result = run_unit_tests(mutated, tmp_path)
    assert result.returncode != 0
    assert failed_alerts(result.stdout + result.stderr) == names(groups)


def test_every_alert_has_a_severity_a_summary_and_a_runbook(groups: RuleGroups) -> None:
    anchors = {heading.lower() for heading in
               re.findall(r"^### (\w+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)}
    for rule in alerting_rules(groups):
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        url = rule["annotations"]["runbook_url"]
        assert url == ("https://github.com/efs-csi/efs-csi/blob/main/docs/troubleshooting.md#"
                       + name.lower()), name
        assert name.lower() in anchors, f"docs/troubleshooting.md has no section {name}"
        assert seconds(rule["for"]) > 0, name
    assert len(anchors) == len(names(groups))  # no runbook for an alert that is gone


def test_the_alerts_the_issue_asks_for(groups: RuleGroups) -> None:
    assert names(groups) == {
        "EfsCsiControllerDown", "EfsCsiNodeDown", "EfsCsiProvisioningFailing",
        "EfsCsiEfsApiThrottled", "EfsCsiGidRangeNearlyExhausted", "EfsCsiAccessPointLimitNear",
        "EfsCsiStaleMount", "EfsCsiMountsFailing", "EfsCsiNodeWithoutTopology",
        "EfsCsiStartupHelperFailing", "EfsCsiVolumeStatsWalksTooSlow"}


def test_values_reach_the_rules() -> None:
    """Job names, extra alert labels, the runbook location and the walk window follow values;
    no placeholder is left."""
    groups = rendered_groups({
        "controller": {"name": "efs-ctrl"},
        "node": {"volMetricsRefreshPeriod": 30},
        "prometheusRule": {"jobs": {"node": "pods"}, "additionalAlertLabels": {"team": "storage",
                                                                               "severity": "x"},
                           "runbookUrl": "https://wiki.example/efs"}})
    text = yaml.safe_dump(groups)
    assert "__" not in text.replace("__name__", "")
    for rule in alerting_rules(groups):
        assert rule["labels"]["team"] == "storage"
        assert rule["labels"]["severity"] in SEVERITIES  # the alert's own wins
        assert rule["annotations"]["runbook_url"].startswith("https://wiki.example/efs#")
        for job in re.findall(r'job="([^"]*)"', rule["expr"]):
            assert job in {"efs-ctrl", "pods"}, rule["alert"]
    walks = next(r for r in alerting_rules(groups) if r["alert"] == "EfsCsiVolumeStatsWalksTooSlow")
    assert "[65m]" in walks["expr"]  # twice the 30-minute refresh period, and a margin


def test_scaling_changes_durations_only(groups: RuleGroups) -> None:
    """What the real-Prometheus flow changes: each ``for`` and range selector, divided."""
    fast = scaled(groups, 60)
    for slow_rule, fast_rule in zip(alerting_rules(groups), alerting_rules(fast), strict=True):
        assert seconds(fast_rule["for"]) == seconds(slow_rule["for"]) / 60
        ranges = re.findall(r"\[([^\]]+)\]", slow_rule["expr"])
        fast_ranges = re.findall(r"\[([^\]]+)\]", fast_rule["expr"])
        assert [seconds(r) / 60 for r in ranges] == [seconds(r) for r in fast_ranges]
        assert re.sub(r"\[[^\]]+\]", "[]", slow_rule["expr"]) == \
            re.sub(r"\[[^\]]+\]", "[]", fast_rule["expr"])
        assert {k: v for k, v in slow_rule.items() if k not in ("for", "expr")} == \
            {k: v for k, v in fast_rule.items() if k not in ("for", "expr")}
    with pytest.raises(ValueError, match="shorter than"):
        scaled(groups, 600)


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_prometheus_skips_on_a_laptop_and_fails_under_ci(
        ci: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Debian's prometheus, every test here skips with the reason, or fails under CI."""
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PROMTOOL", str(tmp_path / "absent"))
    monkeypatch.setenv("PATH", str(tmp_path))
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match=r"promtool not found .*Debian's prometheus package"):
        promtool()

