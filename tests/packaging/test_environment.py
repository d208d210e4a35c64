"""The process environment is read in one place per binary: its ``__main__.main``, which turns
it and the flags into the binary's typed configuration. Anywhere else, a value from the
environment arrives as an argument (read from the code itself)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.ci import REPO

PACKAGES = [REPO / "efs_csi", REPO / "controller" / "efs_csi_controller",
            REPO / "node" / "efs_csi_node"]
_READS = {("os", "environ"), ("os", "environb"), ("os", "getenv"), ("os", "getenvb")}


class _Reads(ast.NodeVisitor):
    """Every reference to the process environment, with the function it is in."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int]] = []
        self._functions = ["<module>"]

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._functions.append(node.name)
        self.generic_visit(node)
        self._functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and (node.value.id, node.attr) in _READS:
            self.found.append((self._functions[-1], node.lineno))
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "os" and any(alias.name in {"environ", "getenv"}
                                       for alias in node.names):
            self.found.append((self._functions[-1], node.lineno))


def reads(path: Path) -> list[tuple[str, int]]:
    """(function, line) of every reference to the process environment in ``path``."""
    visitor = _Reads()
    visitor.visit(ast.parse(path.read_text()))
    return visitor.found


def test_only_each_binary_main_reads_the_environment() -> None:
    everywhere = {(str(path.relative_to(REPO)), function, line)
                  for package in PACKAGES for path in package.rglob("*.py")
                  if "_generated" not in path.parts for function, line in reads(path)}
    outside_main = {(path, function) for path, function, _ in everywhere
                    if not (path.endswith("__main__.py") and function == "main")}
    assert not outside_main, f"the environment is read outside __main__.main: {outside_main}"
    mains = {path for path, _, _ in everywhere}
    assert mains == {"controller/efs_csi_controller/__main__.py",
                     "node/efs_csi_node/__main__.py"}
