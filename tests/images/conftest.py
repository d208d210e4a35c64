"""The images, built once per session (cached builds make a warm run take seconds)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.images.engine import Engine, built_images


@pytest.fixture(scope="session")
def engine(session_report: Callable[[str], None]) -> Iterator[Engine]:
    with built_images() as built:
        phases = built.report["phases_s"]
        session_report("image build (" + ", ".join(
            f"{name} {seconds:.1f}s" for name, seconds in phases.items()) + ")")
        session_report("image sizes (" + ", ".join(
            f"{image} {size / 1e6:.1f} MB"
            for image, size in built.report["image_bytes"].items()) + ")")
        session_report("image SBOMs (" + ", ".join(
            f"{target}: {counts['deb']} deb, {counts['pypi']} pypi, {counts['cargo']} cargo, "
            f"{counts['total']} in all, step {counts['step']}"
            for target, counts in built.report.get("sbom", {}).items()) + ")")
        yield built


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first image test also waits for the build: a cold one takes minutes."""
    for item in items:
        if "tests/images/" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(2700))
