"""The ``refqt`` command line: ``info``, ``--version``, help, ``python -m refqt``."""

import subprocess
import sys

import pytest

import refqt
from refqt.cli import build_parser, main


def test_info_prints_versions_and_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"refqt             {refqt.__version__}" in out
    assert "numpy" in out and "array-api-compat" in out and "cupy" in out
    assert "backends usable   numpy" in out


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"refqt {refqt.__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "info" in capsys.readouterr().out


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["info"])
def test_each_subcommand_has_a_run_function(command):
    assert callable(build_parser().parse_args([command]).run)


def test_python_dash_m_refqt():
    done = subprocess.run(
        [sys.executable, "-m", "refqt", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"refqt {refqt.__version__}"


def test_demo_rejects_a_bad_bit_width_in_one_line(capsys):
    from refqt.cli import main

    assert main(["demo", "--bits", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["refqt: error: QuantConfig: grad_bits must be an integer in 1..16, got 0"]


def test_demo_trains_every_mode_above_chance():
    from refqt.experiments.demo import run_demo

    rows = run_demo(epochs=1, bits=8)
    assert [r["mode"] for r in rows] == ["exact", "QAT", "FQT PTQ 8-bit", "FQT PSQ 8-bit", "FQT BHQ 8-bit"]
    assert all(r["test_accuracy"] > 0.3 for r in rows)  # chance is 0.1
    assert all(0 < r["variance_ratio"] < 0.1 for r in rows if "variance_ratio" in r)
