"""Rules the code base keeps: every ``>>>`` example in a docstring runs, and functions stay short."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import crowdllm

SRC = Path(crowdllm.__file__).parent
MAX_FUNCTION_LINES = 80
# functions allowed to be longer than that (none today; a new one must be argued for here)
KNOWN_LONG: set[tuple[str, str]] = set()


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(SRC)], prefix="crowdllm."):
        spec = importlib.util.find_spec(info.name)
        if spec is not None and spec.origin and ">>>" in Path(spec.origin).read_text(encoding="utf-8"):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} fail (run python -m doctest -v)"


def test_the_checks_find_the_crowd_examples() -> None:
    assert {"crowdllm.crowd.model", "crowdllm.crowd.memory", "crowdllm.blend"} <= set(_modules_with_examples())


def _long_functions() -> set[tuple[str, str]]:
    out = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    out.add((path.relative_to(SRC).as_posix(), node.name))
    return out


def test_no_function_is_longer_than_80_lines() -> None:
    assert _long_functions() <= KNOWN_LONG


def test_the_digital_crowd_module_stays_small() -> None:
    assert len((SRC / "crowd" / "model.py").read_text(encoding="utf-8").splitlines()) <= 300


# the kind objects: crowdllm/data/kinds.py (the one map from a kind's name to its object) and the
# crowd's extension of them; nowhere else is a label kind told apart by its name
KIND_HOMES = {"data/kinds.py", "crowd/kinds.py"}
LABEL_KIND_NAMES = {"continuous", "ordinal", "categorical", "topk", "text"}


def _names_a_label_kind(node: ast.expr) -> bool:
    """A label-kind name, or a tuple/list/set holding one (``"topk"``, ``("ordinal", "topk")``)."""
    if isinstance(node, ast.Constant):
        return node.value in LABEL_KIND_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_label_kind(e) for e in node.elts)
    return False


def _is_a_kind_name(node: ast.expr, kind_vars: set[str]) -> bool:
    """``x.kind``, ``x["kind"]`` or a variable assigned from one of them."""
    if isinstance(node, ast.Attribute):
        return node.attr == "kind"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "kind"
    return isinstance(node, ast.Name) and node.id in kind_vars


def _kind_tests(tree: ast.AST) -> list[int]:
    """Lines that compare a label kind's name with a kind name, or map kind names to something."""
    kind_vars = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and _is_a_kind_name(node.value, set())
                 for t in node.targets if isinstance(t, ast.Name)}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_is_a_kind_name(o, kind_vars) for o in operands) and any(_names_a_label_kind(o) for o in operands):
                lines.append(node.lineno)
        elif isinstance(node, ast.Match) and _is_a_kind_name(node.subject, kind_vars):
            lines.append(node.lineno)
        elif (isinstance(node, ast.Dict) and len(node.keys) >= 2
              and all(k is not None and _names_a_label_kind(k) for k in node.keys)):
            lines.append(node.lineno)  # {"ordinal": ..., "categorical": ...}: a second map from kind names
    return lines


def test_the_kind_check_sees_the_ways_a_kind_is_tested_by_name() -> None:
    found = sorted(_kind_tests(ast.parse('''
a = label.kind == "topk"
b = spec.kind in ("ordinal", "categorical")
c = "text" != ds.label.kind
kind = self.label_.kind
d = kind not in ["continuous"]
e = saved["kind"] == "ordinal"
f = {"ordinal": "rating", "categorical": "choice"}[label.kind]
match label.kind:
    case "topk":
        pass
ok1 = label.kind_.votes
ok2 = prompt_kind == "topk"  # a prompt's kind, not a label's
ok3 = {"ordinal": 1}
ok4 = {"rating": 12, "topk": 48, "text": 256}  # keyed by what the LLM is asked
''')))
    assert found == [2, 3, 4, 6, 7, 8, 9]


def test_only_the_kind_objects_test_a_label_kind_by_name() -> None:
    found = {f"{path.relative_to(SRC).as_posix()}:{line}" for path in SRC.rglob("*.py")
             if path.relative_to(SRC).as_posix() not in KIND_HOMES
             for line in _kind_tests(ast.parse(path.read_text(encoding="utf-8")))}
    assert not found, f"ask the kind object (label.kind_, crowdllm.data.kinds) instead: {sorted(found)}"
