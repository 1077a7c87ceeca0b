"""MkDocs hook: every tutorial as a Jupyter notebook, downloadable from its page.

``tutorials/NN_name.py`` is in jupytext's percent format: ``# %% [markdown]``
starts a text cell whose lines are comments, ``# %%`` a code cell. At build
time :func:`notebook` turns it into an nbformat 4.5 notebook (plain JSON,
written with the standard library; the cells carry no outputs), published as
``tutorials/NN_name.ipynb`` beside the page, and :func:`on_page_markdown`
puts a download link at the top of the page.

The notebook's code cells are the script's code cells, in order and
unchanged, so running them top to bottom is running the tutorial (the test
suite checks both, ``tests/test_notebooks.py``). One cell is added in front:
commented-out ``%pip install`` lines for a notebook service such as Colab
(see the teachers' page).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the tests import this file without the docs extra installed
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page

CELL = re.compile(r"^# %%(.*)$")
TUTORIAL = re.compile(r"^tutorials/(\d\d_[a-z0-9_]+)\.md$")
INSTALL = """\
# On a notebook service (Colab or similar), install refqt first: remove the "# " of ONE line.
# CPU only:
# %pip install "refqt @ git+{url}"
# GPU with CUDA 12 (pulls cupy-cuda12x), or CUDA 13 (cupy-cuda13x):
# %pip install "refqt[cuda12] @ git+{url}"
# %pip install "refqt[cuda13] @ git+{url}"
# Installed with pip install -e . on your own machine? Nothing to do."""
URL_PLACEHOLDER = "<URL of the refqt repository>"


def percent_cells(source: str) -> list[tuple[str, str]]:
    """``[(cell_type, text), ...]`` from percent-format source, cell_type "markdown" or "code".

    Text cells lose the ``# `` comment prefix; code is kept byte for byte
    except leading and trailing blank lines. Anything before the first
    ``# %%`` line is dropped, as are empty cells.
    """
    cells: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        match = CELL.match(line)
        if match:
            cells.append(("markdown" if "[markdown]" in match.group(1) else "code", []))
        elif cells:
            cells[-1][1].append(line)
    out = []
    for kind, lines in cells:
        if kind == "markdown":
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines]
        text = "\n".join(lines).strip("\n")
        if text.strip():
            out.append((kind, text))
    return out


def _source(text: str) -> list[str]:
    """Cell text as nbformat's list of lines, each but the last ending in a newline."""
    return text.splitlines(keepends=True)


def notebook(source: str, stem: str, repo_url: str | None = None) -> dict[str, Any]:
    """The nbformat 4.5 notebook of one percent-format tutorial (cells without outputs).

    Cell ids are ``<stem>-<index>``, so the same tutorial always gives the
    same file. ``repo_url`` fills the install cell (a placeholder if None).
    """
    cells: list[dict[str, Any]] = []
    parsed = percent_cells(source)
    install = ("code", INSTALL.format(url=repo_url or URL_PLACEHOLDER))
    # The install cell goes after the title cell, if the tutorial opens with one.
    at = 1 if parsed and parsed[0][0] == "markdown" else 0
    for i, (kind, text) in enumerate([*parsed[:at], install, *parsed[at:]]):
        cell: dict[str, Any] = {"cell_type": kind, "id": f"{stem}-{i}", "metadata": {}}
        cell["source"] = _source(text)
        if kind == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook_json(path: Path, repo_url: str | None = None) -> str:
    """The ``.ipynb`` text for the tutorial at ``path`` (JSON, one-space indent, as Jupyter writes)."""
    nb = notebook(path.read_text(encoding="utf-8"), path.stem, repo_url)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    from mkdocs.structure.files import File

    root = Path(config.config_file_path).parent
    for path in sorted((root / "tutorials").glob("[0-9]*.py")):
        content = notebook_json(path, config.repo_url)
        files.append(File.generated(config, f"tutorials/{path.stem}.ipynb", content=content))
    return files


def on_page_markdown(markdown: str, page: Page, **kwargs: object) -> str:
    """Put a download link to the notebook under the title of each tutorial page."""
    match = TUTORIAL.match(page.file.src_uri)
    if not match:
        return markdown
    stem = match.group(1)
    link = (
        f'**[Download this tutorial as a notebook]({stem}.ipynb){{ download="{stem}.ipynb" }}** '
        f"(`{stem}.ipynb`; on a notebook service, run its first code cell to install refqt)."
    )
    lines = markdown.split("\n", 1)
    rest = lines[1] if len(lines) > 1 else ""
    return f"{lines[0]}\n\n{link}\n{rest}"
