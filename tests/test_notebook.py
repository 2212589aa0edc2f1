"""A fresh Jupyter kernel, as a learner opens one: define a Net, train it one epoch with cnnlab, and see the
figures as pictures, with no `%matplotlib` magic (executed with nbclient on tiny data)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_mnist

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat, nbclient and ipykernel")
nbclient = pytest.importorskip("nbclient")

SRC = Path(__file__).resolve().parents[1] / "src"

CELLS = [
    f"import sys; sys.path.insert(0, {str(SRC)!r})",
    """
import torch.nn as nn
import torch.nn.functional as F
import cnnlab

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = x.view(-1, 8 * 14 * 14)
        return self.fc1(x)
""",
    'run = cnnlab.train(Net(), "mnist", data_root="data", epochs=1, batch_size=32, progress=False, log=lambda s: None)',
    "run.curves()",
    'run.explain(run.predictor.split().pixels(slice(0, 1)), "gradcam").figure',
]


def test_a_fresh_kernel_shows_cnnlab_figures_inline(tmp_path):
    make_mnist(tmp_path / "data", n_train=160, n_test=40)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in CELLS])
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    curves, explanation = notebook.cells[3].outputs, notebook.cells[4].outputs
    for outputs in (curves, explanation):
        data = [o.get("data", {}) for o in outputs if o.output_type == "execute_result"]
        assert data and "image/png" in data[0], outputs
        assert len(data[0]["image/png"]) > 1000  # base64 of a real picture, not an empty one
