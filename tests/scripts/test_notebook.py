"""notebooks/data_errors.ipynb runs top to bottom, so it never drifts from the injector or validation.

The notebook asserts, per error type, that the ingestion validation reports that type and the
criticality its text promises; this test executes it in a real kernel (the venv's python3).
"""

from __future__ import annotations

import time

import nbformat
import pytest
from nbclient import NotebookClient

from core.error_types import ErrorType
from core.settings import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "data_errors.ipynb"


def stream_text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_notebook_runs_and_shows_every_error_type() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3",  # resolved to this venv's python by jupyter_client
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    started = time.monotonic()
    client.execute()  # raises CellExecutionError, with the failing cell, if any assertion fails
    elapsed = time.monotonic() - started
    texts = [stream_text(c) for c in notebook.cells if c.cell_type == "code"]
    for error_type in ErrorType:
        described = [t for t in texts if f"{error_type}:" in t]
        assert described, f"no injection shown for {error_type}"
        assert any(f"'{error_type} (" in t for t in texts), f"validation report missing for {error_type}"
    reports = [t for t in texts if t.startswith("outcome ") or "\noutcome " in t]
    assert len(reports) == len(ErrorType)
    print(f"notebook executed in {elapsed:.1f} s")
