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
