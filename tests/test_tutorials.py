"""Every tutorial runs top to bottom, as a student would run it, and makes its plots.

Each ``tutorials/*.py`` runs in a fresh Python process (so one tutorial's
imports or matplotlib state cannot help another), with the non-interactive
Agg backend and a temporary working directory for the figures it saves. A
tutorial asserts its own key numbers, so an exception anywhere fails here.
The figures its text shows (``![...](name.png)``) must have been written.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parent.parent / "tutorials").glob("[0-9]*.py"))
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "error::DeprecationWarning"}
    run = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, f"{path.name} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    for image in IMAGE.findall(path.read_text(encoding="utf-8")):
        assert (tmp_path / image).is_file(), f"{path.name} shows {image} but did not write it"
