"""The SDK installs on its own (``pip install ./libs/sdk``): it imports only the standard
library, httpx and itself at module level (an LLM library only inside its instrumentation's
functions), and it ships its type marker."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

SDK = Path(__file__).resolve().parents[3] / "libs" / "sdk"
ALLOWED = {"httpx", "trulayer_sdk", "__future__"}


def _module_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.If):  # TYPE_CHECKING blocks import nothing at run time
            continue
    return names


def test_the_sdk_imports_only_the_standard_library_and_httpx() -> None:
    sources = sorted((SDK / "src" / "trulayer_sdk").rglob("*.py"))
    assert sources
    for path in sources:
        foreign = _module_level_imports(path) - ALLOWED - set(sys.stdlib_module_names)
        assert not foreign, f"{path.name} imports {foreign} at module level"


def test_the_distribution_declares_httpx_only_and_ships_py_typed() -> None:
    project = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["httpx"]
    assert (SDK / "src" / "trulayer_sdk" / "py.typed").is_file()
    assert (SDK / "README.md").is_file() and project["readme"] == "README.md"
