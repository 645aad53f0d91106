"""_core.pyi is generated (scripts/gen_stubs.py); these tests fail when it no longer matches the module."""

from __future__ import annotations

import ast
import importlib.util
import inspect
from pathlib import Path
from typing import Dict, List

import pybind11
import pytest

from perfsage import _core

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gen_stubs", REPO / "scripts" / "gen_stubs.py")
gen_stubs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_stubs)


def _stub_tree() -> ast.Module:
    return ast.parse(gen_stubs.STUB.read_text())


def _parameters(node: ast.FunctionDef) -> List[str]:
    return [a.arg for a in node.args.args]


def _members(body: List[ast.stmt]) -> Dict[str, ast.stmt]:
    out: Dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def _signature_parameters(obj: object) -> List[str]:
    match, _ = gen_stubs._split_doc(obj.__doc__)
    assert match is not None, obj
    return [a.split(":")[0].split("=")[0].strip() for a in gen_stubs._split_args(match["args"])]


def test_every_public_name_of_the_module_is_in_the_stub_with_its_parameters():
    # Independent of how pybind11 spells types: names, members and parameter names must match.
    stub = _members(_stub_tree().body)
    public = {n: v for n, v in vars(_core).items() if not n.startswith("_")}
    assert set(stub) == set(public), "run python scripts/gen_stubs.py"
    for name, value in public.items():
        if isinstance(value, type) and not issubclass(value, BaseException):
            members = _members(stub[name].body)
            for member, attr in vars(value).items():
                if member.startswith("_") and member not in gen_stubs.KEPT_DUNDERS:
                    continue
                if member == "__init__" and gen_stubs._split_doc(attr.__doc__)[0] is None:
                    continue
                assert member in members, f"{name}.{member} is not in the stub"
                if callable(attr) and not isinstance(attr, property):
                    expected = ["self"] + _signature_parameters(attr)[1:]
                    assert _parameters(members[member]) == expected, f"{name}.{member}"
        elif callable(value) and not isinstance(value, type):
            assert _parameters(stub[name]) == _signature_parameters(value), name


@pytest.mark.skipif(f"pybind11 {pybind11.__version__} wrote" not in gen_stubs.STUB.read_text(),
                    reason="the stub was generated with another pybind11, which spells types differently")
def test_committed_stub_equals_a_fresh_generation():
    assert gen_stubs.render() == gen_stubs.STUB.read_text(), "run python scripts/gen_stubs.py"
