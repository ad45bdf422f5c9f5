"""The house plan (DESIGN.md): every module imports on its own, and the rooms keep their walls."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["hub", "connectors", "crm_core", "routing", "webhooks"]
STDLIB = set(sys.stdlib_module_names)


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if ".migrations" not in info.name:
                names.append(info.name)
    return names


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def _needs_pjsua2(name: str) -> bool:
    """The SIP user agent's modules import pjsua2 (the optional ``sip`` extra)."""
    path = ROOT / (name.replace(".", "/") + ".py")
    return path.exists() and "import pjsua2" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", _modules())
def test_module_imports_on_its_own(name: str) -> None:
    """A fresh interpreter per module: an import cycle or import-time side effect fails here."""
    if _needs_pjsua2(name) and importlib.util.find_spec("pjsua2") is None:
        pytest.skip("needs pjsua2: pip install -e '.[sip]'")
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", f"import {name}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_routing_imports_only_the_standard_library() -> None:
    outside = {m for m in _imports("routing") if m.split(".")[0] not in STDLIB | {"routing"}}
    assert outside == set()


@pytest.mark.parametrize("package", ["connectors", "webhooks"])
def test_channels_see_only_the_contracts(package: str) -> None:
    crm = {m for m in _imports(package) if m.startswith("crm_core")}
    assert crm <= {"crm_core", "crm_core.contracts", "crm_core.enums"}
    assert not {m for m in _imports(package) if m.startswith("sqlalchemy")}


def test_below_hub_nothing_reads_the_environment() -> None:
    for package in ["crm_core", "routing", "connectors", "webhooks"]:
        for path in (ROOT / package).rglob("*.py"):
            assert "os.environ" not in path.read_text(encoding="utf-8"), path
