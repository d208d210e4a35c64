"""Boolean text in StorageClass parameters, secrets and volume contexts (pure).

Users move StorageClasses and PVs over from the reference driver, which reads these values
with Go's ``strconv.ParseBool``: ``1 t T TRUE true True`` and ``0 f F FALSE false False``.
Every one of those spellings is accepted here (case does not matter), so a manifest that
worked there works here.
"""

from __future__ import annotations

TRUE_SPELLINGS = frozenset({"1", "t", "true"})
FALSE_SPELLINGS = frozenset({"0", "f", "false"})
EXPECTED = "true or false (also 1/0, t/f)"


def parse_bool_text(text: str) -> bool | None:
    """True or False for an accepted spelling (surrounding blanks ignored), else None."""
    lowered = text.strip().lower()
    if lowered in TRUE_SPELLINGS:
        return True
    if lowered in FALSE_SPELLINGS:
        return False
    return None
