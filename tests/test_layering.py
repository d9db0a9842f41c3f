"""Imports point downwards (docs: ARCHITECTURE): the estimators and the optimizer never import
the layers above them (the command line, the experiment file, the assembly, the loop), and the
value parser depends on nothing but the errors. Checked on the source, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnabla_nas"

#: package -> the modules it must not import (at run time: ``if TYPE_CHECKING`` is allowed).
_TOP = ("nnabla_nas.cli", "nnabla_nas.assemble", "nnabla_nas.config.ExperimentConfig")
FORBIDDEN = {
    "estimator": (*_TOP, "nnabla_nas.runner"),
    "optimizer": (*_TOP, "nnabla_nas.config", "nnabla_nas.runner", "nnabla_nas.estimator"),
    # the loop and the searchers get typed arguments, never the experiment file
    "runner": _TOP,
    # spaces know nothing of algorithms; the module API nothing of spaces or searching
    "contrib": (*_TOP, "nnabla_nas.runner"),
    "module": (*_TOP, "nnabla_nas.runner", "nnabla_nas.contrib", "nnabla_nas.estimator"),
    "data": (*_TOP, "nnabla_nas.runner", "nnabla_nas.contrib", "nnabla_nas.estimator"),
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every run-time import in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_relative_imports_are_resolved():
    found = {m for _, m in imports(PACKAGE / "optimizer" / "factory.py")}
    assert "nnabla_nas.distributed" in found and "nnabla_nas.optimizer.optimizer" in found
    found = {m for _, m in imports(PACKAGE / "estimator" / "latency" / "estimator.py")}
    assert "nnabla_nas.module" in found and "nnabla_nas.estimator.base" in found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_upward(package):
    bad = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for line, module in imports(path):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not bad, "\n".join(bad)


def test_the_value_parser_depends_on_the_errors_only():
    own = {m for _, m in imports(PACKAGE / "parsing.py") if m.startswith("nnabla_nas")}
    assert own <= {"nnabla_nas.errors", "nnabla_nas.errors.ConfigError"}
