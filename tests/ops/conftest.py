"""Ops fixtures: the node tests' mount cleanup, shared for the binary-level checks here."""

from tests.node.conftest import mounts_cleaned

__all__ = ["mounts_cleaned"]
