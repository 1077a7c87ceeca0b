"""The notebooks the docs build publishes: valid nbformat 4, the tutorial's code, and they run.

``docs/hooks/notebooks.py`` turns each ``tutorials/*.py`` into an ``.ipynb``
at build time. Here each notebook is built the same way, validated against
nbformat's own JSON schema, compared line by line with its script, and its
code cells are executed in order in a fresh Python process, as a notebook
kernel would run them (one namespace, no ``__file__``, the working directory
the notebook sits in).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9]*.py"))


def load_hook():
    spec = importlib.util.spec_from_file_location("docs_notebooks_hook", ROOT / "docs/hooks/notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = load_hook()


def script_lines(path: Path) -> tuple[list[str], list[str]]:
    """(code lines, text lines) of a percent-format script, blank lines dropped.

    Written separately from the hook's parser: a line belongs to the cell
    opened by the last ``# %%`` marker above it.
    """
    code, text, kind = [], [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if "[markdown]" in line else "code"
        elif kind == "code" and line.strip():
            code.append(line)
        elif kind == "markdown" and line.strip("# "):
            text.append(line.removeprefix("# "))
    return code, text


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_notebook_is_valid_nbformat_4_with_the_scripts_cells(path):
    raw = HOOK.notebook_json(path, repo_url="https://example.org/refqt.git")
    nb = nbformat.reads(raw, as_version=4)
    nbformat.validate(nb)  # raises nbformat.ValidationError on a schema violation
    assert nb.nbformat == 4 and nb.metadata.kernelspec.name == "python3"
    assert len({c.id for c in nb.cells}) == len(nb.cells)
    code_cells = [c.source for c in nb.cells if c.cell_type == "code"]
    install, tutorial_code = code_cells[0], code_cells[1:]
    assert '%pip install "refqt[cuda12] @ git+https://example.org/refqt.git"' in install
    assert all(line.startswith("#") for line in install.splitlines())  # runs as a no-op locally
    code, text = script_lines(path)
    assert [line for cell in tutorial_code for line in cell.splitlines() if line.strip()] == code
    markdown = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()]
    assert [line for line in markdown if line.strip("# ")] == text
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert raw == HOOK.notebook_json(path, repo_url="https://example.org/refqt.git")  # same bytes each build


def test_install_cell_names_a_placeholder_without_a_repository_url():
    nb = HOOK.notebook("# %%\nx = 1\n", "00_x")
    assert HOOK.URL_PLACEHOLDER in nb["cells"][0]["source"][2]
    assert [c["source"] for c in nb["cells"]][1] == ["x = 1"]
    nbformat.validate(nbformat.from_dict(nb))


RUN_CELLS = """
import json, sys
nb = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for i, cell in enumerate(nb["cells"]):
    if cell["cell_type"] == "code":
        exec(compile("".join(cell["source"]), f"{sys.argv[1]} (cell {i})", "exec"), namespace)
"""


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_notebook_code_cells_run_in_order(path, tmp_path):
    notebook = tmp_path / f"{path.stem}.ipynb"
    notebook.write_text(HOOK.notebook_json(path), encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    run = subprocess.run(
        [sys.executable, "-c", RUN_CELLS, str(notebook)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, f"{notebook.name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    json.loads(notebook.read_text(encoding="utf-8"))  # the run did not need to touch it
