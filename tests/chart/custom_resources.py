"""Validate the chart's custom resources (the Prometheus Operator's ServiceMonitor and
PrometheusRule) against their CRDs' own schemas, strictly.

kubernetes-validate bundles the built-in kinds only. The CRDs are vendored unchanged from
prometheus-operator (crds/, the release named in each file's header); their openAPIV3Schema is
checked with jsonschema, made strict the way ``kubectl --validate=strict`` is: an object schema
with ``properties`` accepts no other field, unless the CRD preserves unknown fields there. The
object's ``metadata`` is a plain object in a CRD schema (the API server checks it itself), so it
is checked here against the few fields the chart sets.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).parent / "crds"
Manifest = dict[str, Any]

_METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if ("properties" in strict and "additionalProperties" not in strict
                and not strict.get("x-kubernetes-preserve-unknown-fields")):
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict schema of every vendored CRD version."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = _METADATA
            schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind",
                                         "metadata", "spec"})
            found[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return found


def is_custom(manifest: Manifest) -> bool:
    return (manifest.get("apiVersion"), manifest.get("kind")) in schemas()


def validate(manifest: Manifest) -> None:
    """Raise ``jsonschema.ValidationError`` when ``manifest`` breaks its CRD's schema."""
    schema = schemas()[(manifest["apiVersion"], manifest["kind"])]
    jsonschema.Draft7Validator(schema).validate(manifest)
