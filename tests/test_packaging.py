"""The host package declares what it imports: every third-party module imported under
host/python/wslx is a dependency (or an optional one) in pyproject.toml, and every
required dependency is pinned in requirements.lock, which tools/setup.sh installs."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

HOST = Path(__file__).resolve().parents[1] / "host" / "python"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _canonical(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0])


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the package files importing it (stdlib and wslx excluded)."""
    found: dict[str, set[str]] = {}
    for path in (HOST / "wslx").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                top = n.split(".")[0]
                if top not in sys.stdlib_module_names and top != "wslx":
                    found.setdefault(top, set()).add(str(path.relative_to(HOST)))
    return found


def _distribution(module: str) -> str:
    """The distribution providing a top-level module (its own name when not installed)."""
    dists = importlib.metadata.packages_distributions().get(module)
    return _canonical(dists[0] if dists else module)


def test_every_import_is_declared():
    project = tomllib.loads((HOST / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    declared |= {_requirement_name(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs}
    missing = {m: files for m, files in _third_party_imports().items() if _distribution(m) not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_dependency_is_pinned():
    project = tomllib.loads((HOST / "pyproject.toml").read_text())["project"]
    pinned = {_canonical(line.split("==")[0]) for line in (HOST / "requirements.lock").read_text().splitlines()
              if "==" in line and not line.lstrip().startswith("#")}
    unpinned = {_requirement_name(r) for r in project["dependencies"]} - pinned
    assert not unpinned, f"declared in pyproject.toml but not pinned in requirements.lock: {unpinned}"
