"""The IAM policy is valid JSON and grants exactly the calls the driver makes."""

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


def statements() -> list[dict[str, object]]:
    policy = json.loads((REPO / "docs" / "iam-policy.json").read_text())
    return policy["Statement"]  # type: ignore[no-any-return]


def actions(statement: dict[str, object]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)  # type: ignore[arg-type]


def test_policy_grants_exactly_the_driver_calls() -> None:
    granted = set().union(*(actions(s) for s in statements()))
    assert granted == DRIVER_CALLS


def test_mutating_calls_are_tag_conditioned() -> None:
    for statement in statements():
        if actions(statement) & {"elasticfilesystem:CreateAccessPoint",
                                 "elasticfilesystem:DeleteAccessPoint"}:
            condition = json.dumps(statement["Condition"])
            assert "efs.csi.aws.com/cluster" in condition
