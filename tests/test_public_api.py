"""The public API is exactly what docs/api.md lists, module by module.

Like httpx's test of its ``__all__``: a name added to a module's ``__all__``
without documentation, a documented name that is gone, or a public name
that leaks out of the package without being in ``__all__``, fails here.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import genauth_guard

API = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def documented() -> dict[str, set[str]]:
    """Module name -> the names in its section's table."""
    sections: dict[str, set[str]] = {}
    current: str | None = None
    for line in API.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"## `([a-z_.]+)`", line)
        if heading:
            current = heading.group(1)
            sections[current] = set()
        elif line.startswith("## "):
            current = None
        elif current is not None:
            row = re.match(r"\| `([A-Za-z_][A-Za-z0-9_]*)` \|", line)
            if row:
                sections[current].add(row.group(1))
    return sections


DOCUMENTED = documented()


def test_the_page_documents_the_package_and_its_public_modules() -> None:
    assert "genauth_guard" in DOCUMENTED and "genauth_guard.wsgi" in DOCUMENTED
    public_modules = {
        f"genauth_guard.{info.name}"
        for info in pkgutil.iter_modules(genauth_guard.__path__)
        if not info.name.startswith("_") and not info.ispkg
    }
    tooling = {"genauth_guard.devserver"}  # documented in dev-tools.md
    assert public_modules - tooling <= set(DOCUMENTED), public_modules - set(DOCUMENTED)


@pytest.mark.parametrize("module_name", sorted(DOCUMENTED))
def test_all_is_what_the_page_documents(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == DOCUMENTED[module_name]
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_nothing_public_leaks_out_of_the_package_without_being_in_all() -> None:
    leaked = {
        name
        for name in dir(genauth_guard)
        if not name.startswith("_")
        and not isinstance(getattr(genauth_guard, name), types.ModuleType)
        and name not in genauth_guard.__all__
    }
    assert leaked == set()


def test_a_wsgi_app_never_imports_starlette() -> None:
    code = (
        "import sys, genauth_guard.wsgi\n"
        "from genauth_guard import SyncIntrospector, require_scopes, get_token_info\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'starlette'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_library_never_imports_the_dev_tooling() -> None:
    code = (
        "import sys, genauth_guard, genauth_guard.wsgi, genauth_guard.discovery\n"
        "genauth_guard.GenAuthGuard\n"
        "print(sorted(m for m in sys.modules if m.startswith('genauth_guard.dev')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
