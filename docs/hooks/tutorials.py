"""MkDocs hook: turn ``tutorials/*.py`` (jupytext percent format) into pages, with outputs.

(It also tidies Sphinx roles out of rendered docstrings, see ``on_page_content``.)

Each tutorial is executed cell by cell in one namespace, in a temporary
working directory, with matplotlib's Agg backend; a code cell is shown
followed by what it printed, and the ``.png`` files the tutorial saves are
published beside its page (``tutorials/<name>.png``). A tutorial that raises
fails the build. Results are cached per file and modification time, so
``mkdocs serve`` only reruns a tutorial you edit.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the tests import this file without the docs extra installed
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files

CELL = re.compile(r"^# %%(.*)$")
# Docstrings use Sphinx roles (":class:`PSQ`"); mkdocstrings renders them as text before the code.
SPHINX_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj):(<code>)~?")
_cache: dict[tuple[str, float], tuple[str, dict[str, bytes]]] = {}


def split_cells(source: str) -> list[tuple[str, str]]:
    """``[(kind, text), ...]`` with kind "markdown" or "code", from percent-format source."""
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
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines)
        else:
            text = "\n".join(lines)
        if text.strip():
            out.append((kind, text.strip("\n")))
    return out


def run_tutorial(path: Path) -> tuple[str, dict[str, bytes]]:
    """The page's markdown and the images the tutorial wrote, ``{file name: bytes}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = split_cells(path.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "__main__", "__file__": str(path)}
    parts = []
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            for i, (kind, text) in enumerate(cells):
                if kind == "markdown":
                    parts.append(text)
                    if i == 0:
                        parts.append(
                            f'!!! note "Run it yourself"\n    This page is `tutorials/{path.name}`, '
                            f"executed when the site was built. Run it with `python tutorials/{path.name}` "
                            "or open it as a notebook with jupytext."
                        )
                    continue
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    exec(compile(text, f"{path.name} (cell {i})", "exec"), namespace)
                parts.append(f"```python\n{text}\n```")
                if printed.getvalue().strip():
                    parts.append(f'```text title="output"\n{printed.getvalue().rstrip()}\n```')
            images = {p.name: p.read_bytes() for p in sorted(Path(tmp).glob("*.png"))}
        finally:
            os.chdir(here)
            plt.close("all")
    return "\n\n".join(parts) + "\n", images


def on_page_content(html: str, **kwargs: object) -> str:
    """Drop Sphinx role prefixes (and the ``~`` shortening mark) left in rendered docstrings."""
    return SPHINX_ROLE.sub(r"\1", html)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    from mkdocs.structure.files import File

    root = Path(config.config_file_path).parent
    published: dict[str, str] = {}
    for path in sorted((root / "tutorials").glob("[0-9]*.py")):
        key = (str(path), path.stat().st_mtime)
        if key not in _cache:
            _cache[key] = run_tutorial(path)
        markdown, images = _cache[key]
        files.append(File.generated(config, f"tutorials/{path.stem}.md", content=markdown))
        for name, data in images.items():
            if name in published:
                raise ValueError(f"tutorials {published[name]} and {path.name} both write {name}")
            published[name] = path.name
            files.append(File.generated(config, f"tutorials/{name}", content=data))
    return files
