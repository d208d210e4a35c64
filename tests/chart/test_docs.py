"""The IAM policy is valid JSON, grants exactly the calls the driver makes, and holds every
mutating call to this cluster's tag (the calls themselves run against it in
tests/controller/test_iam_policy.py)."""

from __future__ import annotations

import json

from tests.support.ci import REPO

DRIVER_CALLS = {
    "elasticfilesystem:DescribeAccessPoints",
    "elasticfilesystem:DescribeFileSystems",
    "elasticfilesystem:DescribeMountTargets",
    "ec2:DescribeAvailabilityZones",
    "elasticfilesystem:CreateAccessPoint",
    "elasticfilesystem:TagResource",
    "elasticfilesystem:DeleteAccessPoint",
}
THIS_CLUSTER = "${aws:PrincipalTag/efs-csi-cluster-id}"
CLUSTER_TAG = "efs.csi.aws.com/cluster"


def statements() -> list[dict[str, object]]:
    policy = json.loads((REPO / "docs" / "iam-policy.json").read_text())
    return policy["Statement"]  # type: ignore[no-any-return]


def actions(statement: dict[str, object]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)  # type: ignore[arg-type]


def conditions(action: str) -> list[dict[str, str]]:
    """The StringEquals block of each statement granting ``action``."""
    return [statement.get("Condition", {}).get("StringEquals", {})  # type: ignore[attr-defined]
            for statement in statements() if action in actions(statement)]


def test_policy_grants_exactly_the_driver_calls() -> None:
    granted = set().union(*(actions(s) for s in statements()))
    assert granted == DRIVER_CALLS


def test_creating_needs_this_clusters_tag() -> None:
    (create,) = conditions("elasticfilesystem:CreateAccessPoint")
    assert create == {f"aws:RequestTag/{CLUSTER_TAG}": THIS_CLUSTER}


def test_tagging_only_while_creating_an_access_point() -> None:
    (tag,) = conditions("elasticfilesystem:TagResource")
    assert tag == {"elasticfilesystem:CreateAction": "CreateAccessPoint",
                   f"aws:RequestTag/{CLUSTER_TAG}": THIS_CLUSTER}


def test_deleting_only_this_clusters_access_points_and_older_releases() -> None:
    values = sorted(condition[f"aws:ResourceTag/{CLUSTER_TAG}"]
                    for condition in conditions("elasticfilesystem:DeleteAccessPoint"))
    assert values == sorted([THIS_CLUSTER, "true"])


def test_the_docs_name_the_principal_tag_and_the_chart_value() -> None:
    text = (REPO / "docs" / "iam-policy.md").read_text()
    for needed in ("efs-csi-cluster-id", "controller.clusterId", "MigrationDelete",
                   "elasticfilesystem:CreateAction", "ClientRootAccess"):
        assert needed in text, needed
