import os

import nbformat
from nbclient import NotebookClient

from tests.conftest import patience, project_environment


def test_notebook_loads_outputs_through_the_catalog(ci_project, monkeypatch):
    for key in [key for key in os.environ if key.startswith("MLFLOW_")]:  # as project_environment drops them
        monkeypatch.delenv(key)
    for key, value in project_environment(KEDRO_ENV="ci").items():  # the environment the fixture ran
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(ci_project / "notebooks" / "group_accuracies.ipynb", as_version=4)
    NotebookClient(notebook, timeout=int(patience(300)), kernel_name="python3",
                   resources={"metadata": {"path": str(ci_project / "notebooks")}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    table = next(o for o in notebook.cells[2].outputs if o.output_type == "execute_result")["data"]["text/plain"]
    for method in ("erm", "neurontune", "neurontune_dagger", "class_balanced_retrain"):
        assert method in table
    assert any("image/png" in o.get("data", {}) for o in notebook.cells[3].outputs)
    assert any("neurons selected" in o.get("text", "") for o in notebook.cells[4].outputs)
