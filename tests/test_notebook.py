"""The walkthrough notebook runs end to end on real MNIST (short training) and is stored clean."""

import nbformat
import pytest
from pathlib import Path

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "walkthrough.ipynb"


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_notebook_uses_only_mnistlab_for_logic():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    imports = [
        line
        for cell in notebook.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if line.startswith(("import ", "from "))
    ]
    assert imports and all(
        line == "import os" or line.startswith("from mnistlab") for line in imports
    )


@pytest.mark.mnist
@pytest.mark.slow
def test_notebook_executes_end_to_end(mnist_dir, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(mnist_dir))
    monkeypatch.setenv("MNISTLAB_NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("MNISTLAB_NOTEBOOK_TRAIN_LIMIT", "5000")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 7  # samples, curves, sample prediction, 2 confusion, errors, reliability
    text = "".join(o.get("text", "") for o in outputs)
    assert "test accuracy" in text
