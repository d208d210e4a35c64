"""Giving a large listing's freed memory back (``efs_csi_controller.heap``): glibc's
``malloc_trim`` where the C library has it, nothing (and no error) where it does not."""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Iterator

import pytest

from efs_csi_controller import heap


@pytest.fixture(autouse=True)
def _fresh_lookup() -> Iterator[None]:
    heap._malloc_trim.cache_clear()
    yield
    heap._malloc_trim.cache_clear()


def test_the_heap_is_trimmed_on_glibc() -> None:
    assert heap.trim_heap() is (platform.libc_ver()[0] == "glibc")


def test_a_c_library_without_malloc_trim_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class Musl:
        """A C library without ``malloc_trim`` (musl, in a slim image)."""

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Musl())
    assert heap.trim_heap() is False


def test_no_c_library_to_open_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: object) -> object:
        raise OSError("no C library")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    assert heap.trim_heap() is False
