"""What real EFS checks that moto does not, written from AWS's own documentation, so tests
judge the driver by EFS's rules rather than by moto's leniency.

Tags: the ``Tag`` type of the EFS API reference (``API_Tag``): a key is 1-128 characters
matching ``^(?![aA]{1}[wW]{1}[sS]{1}:)([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+)$``, a value 0-256
characters matching ``^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$``. The patterns are used verbatim
through the ``regex`` package (Python's ``re`` has no ``\\p{..}`` classes), independently of
how the driver implements the rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import regex

TAG_KEY = regex.compile(r"^(?![aA]{1}[wW]{1}[sS]{1}:)([\p{L}\p{Z}\p{N}_.:/=+\-@]+)$")
TAG_VALUE = regex.compile(r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$")
MAX_KEY, MAX_VALUE = 128, 256


def tag_violations(tags: Mapping[str, str]) -> list[str]:
    """Every way ``tags`` break EFS's Tag rules (empty when EFS would accept them)."""
    problems = []
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_KEY or TAG_KEY.match(key) is None:
            problems.append(f"key {key!r}")
        if len(value) > MAX_VALUE or TAG_VALUE.match(value) is None:
            problems.append(f"value {value!r} of {key!r}")
    return problems
