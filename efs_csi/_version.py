"""The package version, shared by both binaries (they speak one wire contract)."""

__version__ = "0.1.0"
