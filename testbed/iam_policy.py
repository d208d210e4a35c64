"""IAM's decision on the EFS calls efs-csi makes, for an identity policy such as
docs/iam-policy.json: a fake of IAM, which cannot run here (moto does not evaluate policy
conditions), kept to the rules AWS documents for the parts that policy uses.

- Implicit deny: a request is allowed when some ``Allow`` statement matches its action and all
  of that statement's conditions hold, and no ``Deny`` statement matches.
- ``Action`` is a string or a list; ``*`` and ``?`` are wildcards, matched case-insensitively.
  ``Resource`` must be ``*`` (the policy grants by tag, not by ARN).
- ``Condition``: every operator block must hold, every key in it must hold, and a key holds
  when the request's value matches any of the listed values (one value per key here).
  Operators: ``StringEquals``, ``StringNotEquals``, ``StringLike`` (``*``/``?``), ``Null``,
  and any of them with ``IfExists``. A key absent from the request makes a condition false,
  except ``...IfExists`` (true) and ``Null`` (which tests absence).
- Policy variables ``${aws:PrincipalTag/<key>}`` in condition values are replaced by the
  principal's tag; a missing tag makes the value match nothing, as in IAM.
- Context keys: ``aws:RequestTag/<key>`` (tags sent with the call), ``aws:ResourceTag/<key>``
  (tags of the resource acted on), ``elasticfilesystem:CreateAction`` (set only when tags
  ride on a create: "tag on create").

``efs_authorizations`` says which actions one EFS API call is authorised as, as EFS does:
CreateAccessPoint with tags is also authorised as ``TagResource`` with
``elasticfilesystem:CreateAction = CreateAccessPoint`` (docs.aws.amazon.com/efs, "Granting
permissions to tag resources during creation").
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Context = dict[str, str]
_VARIABLE = re.compile(r"\$\{aws:PrincipalTag/([^}]+)\}")


@dataclass(frozen=True)
class Authorization:
    """One IAM action a call is authorised as, with its request context."""

    action: str
    context: Context = field(default_factory=dict)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _matches(pattern: str, text: str) -> bool:
    return fnmatch.fnmatchcase(text.lower(), pattern.lower())


@dataclass(frozen=True)
class IdentityPolicy:
    document: Mapping[str, Any]
    principal_tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, principal_tags: Mapping[str, str]) -> IdentityPolicy:
        return cls(json.loads(path.read_text()), dict(principal_tags))

    @property
    def statements(self) -> list[Mapping[str, Any]]:
        return list(self.document["Statement"])

    def _substitute(self, value: str) -> str | None:
        missing = False

        def tag(match: re.Match[str]) -> str:
            nonlocal missing
            found = self.principal_tags.get(match.group(1))
            if found is None:
                missing = True
                return ""
            return found

        substituted = _VARIABLE.sub(tag, value)
        return None if missing else substituted

    def _condition_holds(self, operator: str, key: str, expected: list[str],
                         context: Context) -> bool:
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        actual = context.get(key)
        if base == "Null":
            wanted_absent = [value.lower() == "true" for value in expected]
            return (actual is None) in wanted_absent
        if actual is None:
            return if_exists
        values = [v for v in (self._substitute(value) for value in expected) if v is not None]
        if base == "StringEquals":
            return actual in values
        if base == "StringNotEquals":
            return actual not in values
        if base == "StringLike":
            return any(fnmatch.fnmatchcase(actual, value) for value in values)
        raise ValueError(f"condition operator {operator} is not modelled")

    def _statement_matches(self, statement: Mapping[str, Any], request: Authorization) -> bool:
        if not any(_matches(action, request.action) for action in _as_list(statement["Action"])):
            return False
        if _as_list(statement.get("Resource", "*")) != ["*"]:
            raise ValueError("only Resource '*' is modelled")
        for operator, keys in statement.get("Condition", {}).items():
            for key, expected in keys.items():
                if not self._condition_holds(operator, key, _as_list(expected),
                                             request.context):
                    return False
        return True

    def allows(self, request: Authorization) -> bool:
        matching = [s for s in self.statements if self._statement_matches(s, request)]
        if any(s["Effect"] == "Deny" for s in matching):
            return False
        return any(s["Effect"] == "Allow" for s in matching)

    def granted_actions(self) -> set[str]:
        return {action for s in self.statements if s["Effect"] == "Allow"
                for action in _as_list(s["Action"])}


def tag_context(prefix: str, tags: Mapping[str, str]) -> Context:
    return {f"{prefix}/{key}": value for key, value in tags.items()}


def efs_authorizations(operation: str, *, request_tags: Mapping[str, str] | None = None,
                       resource_tags: Mapping[str, str] | None = None
                       ) -> Sequence[Authorization]:
    """The IAM actions one EFS API call is authorised as (see the module docstring)."""
    action = f"elasticfilesystem:{operation}"
    context: Context = {}
    if request_tags:
        context.update(tag_context("aws:RequestTag", request_tags))
    if resource_tags:
        context.update(tag_context("aws:ResourceTag", resource_tags))
    checks = [Authorization(action, context)]
    if operation == "CreateAccessPoint" and request_tags:
        checks.append(Authorization("elasticfilesystem:TagResource",
                                    {**context,
                                     "elasticfilesystem:CreateAction": "CreateAccessPoint"}))
    return checks


@dataclass(frozen=True)
class IamAuthorizer:
    """What the EFS proxy consults: the policy, and who the caller is (for AWS's message)."""

    policy: IdentityPolicy
    caller_arn: str = ("arn:aws:sts::111122223333:assumed-role/efs-csi-controller/"
                       "botocore-session-1700000000")

    def denial(self, authorizations: Sequence[Authorization]) -> str | None:
        """AWS's AccessDenied message for the first action refused, or None."""
        for request in authorizations:
            if not self.policy.allows(request):
                return (f"User: {self.caller_arn} is not authorized to perform: "
                        f"{request.action} on the specified resource because no "
                        f"identity-based policy allows the {request.action} action")
        return None
