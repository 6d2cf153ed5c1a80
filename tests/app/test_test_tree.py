"""The test tree's own rules: test modules live in a folder of their domain, and none is
imported by another module; what tests share lives in helper and fixture modules
(`tests/factories.py`, `tests/<domain>/helpers.py`, the `conftest.py` files)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def package_of(path: Path) -> str:
    """The package a module of the test tree belongs to (itself, for an `__init__.py`)."""
    return ".".join(path.relative_to(TESTS.parent).parent.parts)


def imported_modules(source: str, package: str) -> set[str]:
    """Every module a source imports, anywhere in it, by its absolute name; for
    `from a import b`, both `a` and `a.b` (b may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def test_no_module_of_the_tests_imports_a_test_module_or_a_conftest() -> None:
    sources = sorted(TESTS.rglob("*.py"))
    assert len(sources) > 20
    offenders = [
        f"{path.relative_to(TESTS.parent)} imports {name}"
        for path in sources
        for name in sorted(imported_modules(path.read_text(), package_of(path)))
        if is_test_module(name)
    ]
    assert offenders == []


def test_the_check_sees_every_form_of_import() -> None:
    source = (
        "from tests.gateway.test_gateway import sensor\n"
        "import tests.webhooks.test_webhooks\n"
        "from tests.images import test_images, helpers\n"
        "from .test_mqtt import bridge\n"
        "from ..conftest import BACKENDS\n"
        "def later():\n"
        "    from tests.simulator.test_simulator_fleet import FakePlatform\n"
        "from tests.factories import Api\n"
    )
    found = {name for name in imported_modules(source, "tests.gateway") if is_test_module(name)}
    assert found == {
        "tests.gateway.test_gateway",
        "tests.webhooks.test_webhooks",
        "tests.images.test_images",
        "tests.gateway.test_mqtt",
        "tests.conftest",
        "tests.simulator.test_simulator_fleet",
    }


def test_every_test_module_is_in_a_domain_folder() -> None:
    assert sorted(path.name for path in TESTS.glob("test_*.py")) == []
    for folder in {path.parent for path in TESTS.rglob("test_*.py")}:
        assert (folder / "__init__.py").is_file(), f"tests/{folder.name}/ needs an __init__.py"
