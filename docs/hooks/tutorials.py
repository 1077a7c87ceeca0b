"""MkDocs hook: turn ``tutorials/*.py`` (jupytext percent format) into pages, with outputs.

(It also tidies Sphinx roles out of rendered docstrings, see ``on_page_content``.)

Each tutorial is executed cell by cell in one namespace, in a temporary
working directory, with matplotlib's Agg backend; a code cell is shown
followed by what it printed, and the ``.png`` files the tutorial saves are
published beside its page (``tutorials/<name>.png``). A tutorial that raises
fails the build with a short message naming the tutorial, the cell, the line,
the error and the values of the line's variables (no traceback). Results are
cached per file and modification time, so ``mkdocs serve`` only reruns a
tutorial you edit.
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


class TutorialFailed(Exception):
    """A tutorial raised: the message names the file, the cell, the line, the error and its values.

    In the docs build it is re-raised as MkDocs' ``PluginError``, which prints the message alone.
    """


def split_cells(source: str) -> list[tuple[str, str]]:
    """``[(kind, text), ...]`` with kind "markdown" or "code", from percent-format source."""
    return [(kind, text) for kind, text, _ in numbered_cells(source)]


def numbered_cells(source: str) -> list[tuple[str, str, int]]:
    """``[(kind, text, line), ...]``: the cells of :func:`split_cells`, each with its first line in the file.

    Lines count from 1, as in a traceback.
    """
    cells: list[tuple[str, list[tuple[int, str]]]] = []
    for number, line in enumerate(source.splitlines(), start=1):
        match = CELL.match(line)
        if match:
            cells.append(("markdown" if "[markdown]" in match.group(1) else "code", []))
        elif cells:
            cells[-1][1].append((number, line))
    out = []
    for kind, numbered in cells:
        lines = [line for _, line in numbered]
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines)
        else:
            text = "\n".join(lines)
        if text.strip():
            skipped = len(text) - len(text.lstrip("\n"))  # blank lines before the text
            out.append((kind, text.strip("\n"), numbered[0][0] + skipped))
    return out


def cell_at_line(source: str, line: int) -> tuple[int, int]:
    """``(cell, line in cell)``, both from 1, of a line of the file; cells as in :func:`split_cells`."""
    cell, first = 0, 1
    for i, (_, _, start) in enumerate(numbered_cells(source), start=1):
        if start <= line:
            cell, first = i, start
    return cell, line - first + 1


def _values(statement: str, namespace: dict) -> str:
    """``name = value`` for each variable of ``statement`` in the namespace; reprs cut to 200 characters."""
    import ast

    try:
        names = dict.fromkeys(n.id for n in ast.walk(ast.parse(statement.strip())) if isinstance(n, ast.Name))
    except SyntaxError:
        return ""
    shown = []
    for name in names:
        value = namespace.get(name)
        if name in namespace and not callable(value) and not isinstance(value, type(ast)):
            text = repr(value)
            shown.append(f"{name} = {text if len(text) <= 200 else text[:200] + ' ...'}")
    return "; ".join(shown)


def describe_failure(path: Path, cell: int, text: str, error: BaseException, namespace: dict) -> str:
    """A few lines naming the tutorial, the cell, the failing line, the error and the values it used."""
    import traceback

    where = f"{path.name} (cell {cell})"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == where and f.lineno]
    head = f"tutorials/{path.name} failed in cell {cell}"
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if not frames:
        return f"{head}\n  {message}"
    line, last = frames[-1].lineno, getattr(frames[-1], "end_lineno", None) or frames[-1].lineno
    start = numbered_cells(path.read_text(encoding="utf-8"))[cell - 1][2]
    statement = " ".join(part.strip() for part in text.splitlines()[line - 1 : last])
    parts = [f"{head}, line {start + line - 1} of the file:", f"  {statement}", f"  {message}"]
    values = _values(statement, namespace)
    if values:
        parts.append(f"  values: {values}")
    return "\n".join(parts)


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
            for i, (kind, text) in enumerate(cells, start=1):
                if kind == "markdown":
                    parts.append(text)
                    if i == 1:
                        parts.append(
                            f'!!! note "Run it yourself"\n    This page is `tutorials/{path.name}`, '
                            f"executed when the site was built. Run it with `python tutorials/{path.name}` "
                            "or open it as a notebook with jupytext."
                        )
                    continue
                printed = io.StringIO()
                try:
                    with contextlib.redirect_stdout(printed):
                        exec(compile(text, f"{path.name} (cell {i})", "exec"), namespace)
                except Exception as error:
                    raise TutorialFailed(describe_failure(path, i, text, error, namespace)) from None
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
            from mkdocs.exceptions import PluginError

            try:
                _cache[key] = run_tutorial(path)
            except TutorialFailed as failure:
                raise PluginError(str(failure)) from None
        markdown, images = _cache[key]
        files.append(File.generated(config, f"tutorials/{path.stem}.md", content=markdown))
        for name, data in images.items():
            if name in published:
                raise ValueError(f"tutorials {published[name]} and {path.name} both write {name}")
            published[name] = path.name
            files.append(File.generated(config, f"tutorials/{name}", content=data))
    return files
