"""The terminal output pasted into the command pages is what the commands print now.

A page's ```` ```console ```` block is a real run pasted by hand; the numbers in it
depend on the machine and the run, but its shape must not drift from the code: the
lines a command prints (numbers and paths masked), the run count of the quick
reproduction, the order of its parts and the claims it judges. Each test reads the
page and compares it with what the code prints or computes today, so changing an
output without refreshing its page fails here.
"""

import re

import pytest
from docs_pages import console_blocks, shape

from refqt.cli import main
from refqt.experiments.claims import claims_table
from refqt.experiments.reproduce import PARTS, QUICK, digits_specs


def test_console_blocks_are_found():
    assert len(console_blocks("reproduce.md")) >= 2
    assert console_blocks("demo.md")[0][0] == "$ refqt demo"


@pytest.mark.slow
def test_demo_page_shows_what_demo_prints(capsys):
    assert main(["demo", "--epochs", "1", "--bits", "8"]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = console_blocks("demo.md")[0][1:]  # after the "$ refqt demo" line
    assert [shape(line) for line in printed] == [shape(line) for line in shown], "\n".join(printed)
    rows = printed[2:-1]
    modes = ["exact", "QAT", "FQT PTQ 8-bit", "FQT PSQ 8-bit", "FQT BHQ 8-bit"]
    assert [r.split("  ")[0] for r in rows] == modes
    for row in rows:  # one epoch already trains far above chance (10%), and 8-bit noise is small
        accuracy = float(row.split("%")[0].split()[-1])
        assert accuracy > 30.0, row
        ratio = row.split("%")[1].split()[0]
        assert ratio == "-" or 0.0 < float(ratio) < 0.1, row


def quick_blocks() -> list[list[str]]:
    return [b for b in console_blocks("reproduce.md") if b[0].startswith("$ refqt reproduce --quick")]


def test_reproduce_page_counts_the_quick_suites_runs():
    runs = len(digits_specs(QUICK, QUICK.seeds))
    lines = [line for block in quick_blocks() for line in block]
    counts = {int(n) for line in lines for n in re.findall(r"\[\d+/(\d+)\]", line)}
    assert counts == {runs}, f"reproduce.md shows [i/N], N in {counts}; the quick suite has {runs}"


def test_reproduce_page_runs_the_parts_in_order():
    block = quick_blocks()[0]
    started = [m.group(1) for line in block if (m := re.fullmatch(r"part (\w+)\.\.\.", line))]
    assert tuple(started) == PARTS


def test_reproduce_page_shows_every_claim_the_code_judges():
    block = quick_blocks()[0]
    judged = [m.groups() for line in block if (m := re.fullmatch(r"\[([a-z ]+)\] (.+)", line))]
    claims = [c["claim"] for c in claims_table({"parts": {}})]
    assert [claim for _, claim in judged] == claims
    verdicts = {"reproduced", "not reproduced", "reversed", "not measured"}
    assert {verdict for verdict, _ in judged} <= verdicts


@pytest.mark.slow
def test_train_page_shows_what_train_prints_and_writes(tmp_path, capsys):
    blocks = console_blocks("train.md")
    command = blocks[0][0].split()  # $ refqt train ... --out runs/cnn-bhq5
    assert command[:2] == ["$", "refqt"] and command[-2] == "--out"
    assert main([*command[2:-1], str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [shape(line) for line in printed] == [shape(line) for line in blocks[0][1:]], "\n".join(printed)
    listing = next(b for b in blocks if b[0] == f"$ ls {command[-1]}")
    assert sorted(listing[1].split()) == sorted(p.name for p in (tmp_path / "run").iterdir())


def test_info_page_shows_every_line_info_prints(capsys):
    assert main(["info"]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = next(b for b in console_blocks("index.md") if b[0] == "$ refqt info")[1:]
    assert [line.split()[0] for line in printed] == [line.split()[0] for line in shown], "\n".join(printed)
