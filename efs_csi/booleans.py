"""The one boolean vocabulary: command-line flags, StorageClass parameters, secrets and volume
contexts all read true and false here (pure).

Users move StorageClasses, PVs and flags over from the reference driver, which reads all of
them with Go's ``strconv.ParseBool`` (its flags through Go's ``flag`` package):
``1 t T TRUE true True`` and ``0 f F FALSE false False``. Every one of those spellings is
accepted here (case does not matter), so a manifest or an argument list that worked there works
here; any other text is refused, and the caller's error names the flag or the key.
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
