"""The documentation's claims stay true: the home page's output, the tutorial pages.

* ``docs/examples/home.py`` is the home page's one-screen example; its printed
  output is pasted from ``docs/examples/home.out``. Running it again must print
  the same lines, with the same numbers up to a small tolerance (BLAS
  libraries may sum in a different order).
* The MkDocs hook that renders ``tutorials/*.py`` finds a title cell in each.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")


def load_hook():
    spec = importlib.util.spec_from_file_location("docs_tutorials_hook", ROOT / "docs/hooks/tutorials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_home_example_prints_what_the_home_page_shows(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "docs/examples/home.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    shown = (ROOT / "docs/examples/home.out").read_text(encoding="utf-8").splitlines()
    printed = run.stdout.splitlines()
    assert [NUMBER.sub("#", line) for line in printed] == [NUMBER.sub("#", line) for line in shown]
    for got, want in zip(printed, shown, strict=True):
        for a, b in zip(NUMBER.findall(got), NUMBER.findall(want), strict=True):
            assert float(a) == pytest.approx(float(b), abs=0.02), (got, want)


def test_every_tutorial_has_a_title_and_code():
    hook = load_hook()
    tutorials = sorted((ROOT / "tutorials").glob("[0-9]*.py"))
    assert tutorials
    for path in tutorials:
        cells = hook.split_cells(path.read_text(encoding="utf-8"))
        kind, text = cells[0]
        assert kind == "markdown" and text.startswith("# "), path.name
        assert any(kind == "code" for kind, _ in cells), path.name


def test_cells_split_on_percent_markers():
    hook = load_hook()
    source = "# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n# %%\nx = 1\nprint(x)\n\n# %%\n\n"
    assert hook.split_cells(source) == [("markdown", "# Title\n\nSome *text*."), ("code", "x = 1\nprint(x)")]


def _subcommand_options() -> dict[str, set[str]]:
    """``{command: {"--flag", ...}}`` of the real ``refqt`` parser, hidden options (tests only) left out."""
    import argparse

    from refqt.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "train" in a.choices)
    return {
        name: {
            flag
            for action in sub._actions
            if action.help != argparse.SUPPRESS
            for flag in action.option_strings
            if flag.startswith("--")
        }
        for name, sub in subparsers.choices.items()
    }


def test_command_line_pages_document_real_options():
    """Every ``--flag`` a command's page names exists, and every option the parser shows is on the page."""
    options = _subcommand_options()
    for command in ("demo", "train", "variance", "reproduce", "bench"):
        page = (ROOT / "docs/cli" / f"{command}.md").read_text(encoding="utf-8")
        named = set(re.findall(r"`(--[a-z][a-z-]*)", page))
        unknown = named - options[command]
        assert not unknown, f"docs/cli/{command}.md names options refqt {command} lacks: {sorted(unknown)}"
        missing = options[command] - {"--help"} - set(re.findall(r"(--[a-z][a-z-]*)", page))
        assert not missing, f"docs/cli/{command}.md does not mention: {sorted(missing)}"


def test_every_tutorial_is_in_the_nav_and_the_index():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    index = (ROOT / "docs/tutorials/index.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "tutorials").glob("[0-9]*.py")):
        assert f"tutorials/{path.stem}.md" in nav, path.name
        assert f"({path.stem}.md)" in index, path.name


def test_a_failing_tutorial_names_the_cell_the_line_and_the_values(tmp_path):
    """The docs build stops with a few lines, not a traceback: file, cell, line, error, values."""
    hook = load_hook()
    path = tmp_path / "99_broken.py"
    path.write_text(
        "# %% [markdown]\n# # Broken\n\n# %%\nfinal = {'BHQ': 0.947, 'PTQ': 0.95}\n\n"
        "# %%\nprint('checking')\nassert final['BHQ'] > final['PTQ']\n",
        encoding="utf-8",
    )
    with pytest.raises(hook.TutorialFailed) as failure:
        hook.run_tutorial(path)
    assert str(failure.value).splitlines() == [
        "tutorials/99_broken.py failed in cell 3, line 9 of the file:",
        "  assert final['BHQ'] > final['PTQ']",
        "  AssertionError",
        "  values: final = {'BHQ': 0.947, 'PTQ': 0.95}",
    ]
