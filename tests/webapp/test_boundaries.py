"""The webapp talks to the API only: it never imports the model, the database or the API's code."""

from __future__ import annotations

import ast
from pathlib import Path

from core.settings import REPO_ROOT

WEBAPP = REPO_ROOT / "webapp"
FORBIDDEN = ("model", "db", "api", "dags", "sqlalchemy", "psycopg", "sklearn", "joblib")


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_webapp_module_imports_model_database_or_api_code() -> None:
    sources = sorted(WEBAPP.rglob("*.py"))
    assert len(sources) >= 10  # the entry file, the pages and the modules were all found
    offenders = {
        str(path.relative_to(WEBAPP)): sorted(imported_packages(path) & set(FORBIDDEN)) for path in sources
    }
    assert {name: found for name, found in offenders.items() if found} == {}
