"""Every tutorial runs top to bottom, as a student would run it, and makes its plots.

Each ``tutorials/*.py`` runs in a fresh Python process (so one tutorial's
imports or matplotlib state cannot help another), with the non-interactive
Agg backend (``MPLBACKEND``; the tutorials leave the backend alone, so as
notebooks they show their figures) and a temporary working directory for the
figures it saves. A tutorial asserts its own key numbers, with messages that
carry the values, so an exception anywhere fails here; the failure names the
cell (numbered as on the docs page) and the line.
The figures its text shows (``![...](name.png)``) must have been written.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parent.parent / "tutorials").glob("[0-9]*.py"))
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")
ROOT = Path(__file__).resolve().parent.parent


def where_it_failed(path: Path, stderr: str) -> str:
    """``cell C, line L of the file: <error>`` from a traceback; cells numbered as on the docs page."""
    spec = importlib.util.spec_from_file_location("docs_tutorials_hook", ROOT / "docs/hooks/tutorials.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    lines = [int(n) for n in re.findall(rf'File "[^"]*{re.escape(path.name)}", line (\d+)', stderr)]
    error = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    if not lines:
        return error
    cell, _ = hook.cell_at_line(path.read_text(encoding="utf-8"), lines[-1])
    return f"cell {cell}, line {lines[-1]} of the file: {error}"


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "error::DeprecationWarning"}
    run = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, (
        f"{path.name} failed in {where_it_failed(path, run.stderr)}\n"
        f"--- its output:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    )
    for image in IMAGE.findall(path.read_text(encoding="utf-8")):
        assert (tmp_path / image).is_file(), f"{path.name} shows {image} but did not write it"


def test_a_failure_names_the_cell_the_line_and_the_error(tmp_path):
    path = tmp_path / "99_broken.py"
    path.write_text(
        "# %% [markdown]\n# # Broken\n\n# %%\nx = 1\n\n# %%\ny = 2\nassert y > 5, f'y = {y}'\n",
        encoding="utf-8",
    )
    run = subprocess.run([sys.executable, path], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert where_it_failed(path, run.stderr) == "cell 3, line 9 of the file: AssertionError: y = 2"
