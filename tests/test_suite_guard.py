"""A cheap guard against tests that cannot fail: every test function checks something.

The rule, kept simple: a function named test_* in a tests/**/test_*.py module must
contain an `assert`, a `pytest.raises(...)`, or a call to a helper whose name starts
with `assert_`, `_assert_` or `expect_` (a helper that asserts for it).  A test whose
check lives elsewhere for a good reason is listed in EXEMPT, with the reason.  It
does not judge whether an assertion can fail: that is for review, and for breaking
the code by hand once.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent

CHECKING_PREFIXES = ("assert_", "_assert_", "expect_")

# "path relative to tests/::function" -> why it checks nothing itself.  Keep it short.
EXEMPT: dict[str, str] = {
    "extension/test_fields.py::test_report_satisfies_the_collector_protocol": (
        "protocol.validate_report raises ProtocolError for a report the collector would refuse"
    ),
}


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def checks_something(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = _called_name(node)
            if name == "raises" or name.startswith(CHECKING_PREFIXES):
                return True
    return False


def functions_named_test(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    found: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            found.append(node)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found += [
                item
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test_")
            ]
    return found


def unchecked_tests(root: Path = TESTS) -> list[str]:
    offenders = []
    for path in sorted(root.rglob("test_*.py")):
        for function in functions_named_test(ast.parse(path.read_text(), str(path))):
            key = f"{path.relative_to(root)}::{function.name}"
            if key not in EXEMPT and not checks_something(function):
                offenders.append(f"{key} (line {function.lineno})")
    return offenders


def test_every_test_function_checks_something() -> None:
    assert unchecked_tests() == [], "a test with no assert, no pytest.raises and no assert_/expect_ helper"


def test_exemptions_name_existing_tests_and_give_reasons() -> None:
    for key, reason in EXEMPT.items():
        path, _, name = key.partition("::")
        tree = ast.parse((TESTS / path).read_text())
        assert name in {f.name for f in functions_named_test(tree)}, key
        assert len(reason) > 10, key


def test_the_guard_can_fail(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_checks_nothing():\n    x = 1\n"
        "def test_asserts():\n    assert 1\n"
        "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')\n"
        "def test_helper():\n    assert_all_fine()\n"
        "class TestGroup:\n    def test_nothing_either(self):\n        pass\n"
    )
    assert unchecked_tests(tmp_path) == [
        "test_sample.py::test_checks_nothing (line 2)",
        "test_sample.py::test_nothing_either (line 12)",
    ]
