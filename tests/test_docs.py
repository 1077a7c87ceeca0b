"""The documentation's claims stay true: the home page's output, the tutorial pages.

* ``docs/examples/home.py`` is the home page's one-screen example; its printed
  output is pasted from ``docs/examples/home.out``. Running it again must print
  the same lines, each number within the spread that other seeds give (another
  BLAS kernel sums in another order, and the run then ends like another seed).
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


# How far each number of the home example may move, keyed by the start of its line: 4·√2·sd of its
# seed-to-seed spread. `python docs/examples/home_spread.py 16` printed, over 16 seeds: test
# accuracy mean 0.906, sd 0.037 (min 0.808, max 0.961); variance ratio mean 0.0041, sd 0.0026.
# home.out came from one run on one machine; on another BLAS kernel the run ends like another
# seed would (issue 13 measured OPENBLAS_CORETYPE = SkylakeX / Haswell / Sandybridge: 0.925 /
# 0.955 / 0.908 at one commit); two seeds differ with sd √2·sd, so a correct run lands
# outside with probability about 6e-5 for normal errors. The accuracy check is loose because
# two epochs are short: it catches a run that stops learning (chance is 0.1), not a point.
HOME_TOLERANCE = {"test accuracy": 0.21, "quantization variance / sampling variance": 0.015}


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
    assert [NUMBER.sub("#", line) for line in printed] == [NUMBER.sub("#", line) for line in shown], (
        f"docs/examples/home.py printed\n{run.stdout}\nbut the home page shows\n" + "\n".join(shown)
    )
    for got, want in zip(printed, shown, strict=True):
        numbers = list(zip(NUMBER.findall(got), NUMBER.findall(want), strict=True))
        if not numbers:  # "rejected at alpha=1e-6: False": a correct run prints True once in a million
            assert got == want, (got, want)
            continue
        tolerance = next(t for start, t in HOME_TOLERANCE.items() if got.startswith(start))
        for a, b in numbers:
            assert abs(float(a) - float(b)) <= tolerance, (
                f"home example: {got!r} vs the page's {want!r}; more than {tolerance} apart, "
                "4·√2 times the seed-to-seed sd (docs/examples/home_spread.py)"
            )


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


def load_maths_hook():
    spec = importlib.util.spec_from_file_location("docs_maths_hook", ROOT / "docs/hooks/maths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_formula_of_the_docs_becomes_mathml():
    """The site needs no MathJax: every formula of the pages and tutorials converts at build time."""
    pytest.importorskip("latex2mathml")
    markdown = pytest.importorskip("markdown")
    pytest.importorskip("pymdownx.arithmatex")
    hook = load_maths_hook()
    md = markdown.Markdown(
        extensions=["pymdownx.arithmatex"], extension_configs={"pymdownx.arithmatex": {"generic": True}}
    )
    pages = sorted((ROOT / "docs").rglob("*.md"))
    split = load_hook().split_cells
    tutorials = [
        "\n\n".join(text for kind, text in split(p.read_text(encoding="utf-8")) if kind == "markdown")
        for p in sorted((ROOT / "tutorials").glob("[0-9]*.py"))
    ]
    formulas = 0
    for text in [p.read_text(encoding="utf-8") for p in pages] + tutorials:
        page = md.reset().convert(text)
        formulas += page.count('class="arithmatex"')
        rendered = hook.render(page)
        assert 'class="arithmatex">\\(' not in rendered and 'class="arithmatex">\\[' not in rendered
        assert rendered.count("<math ") == page.count('class="arithmatex"')
    assert formulas > 100  # the theory pages alone have over a hundred


def test_a_formula_that_does_not_convert_fails_with_the_formula():
    pytest.importorskip("latex2mathml")
    hook = load_maths_hook()
    assert hook.to_mathml("x^2", display=False).startswith("<math")
    assert 'display="block"' in hook.to_mathml(r"\frac{a}{b}", display=True)
    with pytest.raises(hook.MathError, match=r"\$x\^\$"):
        hook.to_mathml("x^", display=False)
    with pytest.raises(hook.MathError, match=r"TeX left in it: \\notacommand"):
        hook.to_mathml(r"\notacommand x", display=False)
