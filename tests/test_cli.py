"""The ``refqt`` command line: ``info``, ``--version``, help, ``python -m refqt``."""

import argparse
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
    assert err == ["refqt: error: --bits must be an integer in 1..16, got 0"]


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_help_describes_each_option_and_shows_its_default():
    for name, sub in _subparsers().items():
        text = sub.format_help()
        assert sub.description, f"refqt {name} --help has no description"
        for action in sub._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or action.dest == "help":
                continue
            assert action.help, f"refqt {name} {action.option_strings[0]} has no help"
            if action.default not in (None, False):
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)


def test_one_name_per_model_across_subcommands(tmp_path, capsys):
    choices = {
        name: set(a.choices) for name, sub in _subparsers().items() for a in sub._actions if a.dest == "model"
    }
    assert choices["variance"] <= choices["train"]  # every digits model, named as train names it
    assert {"mlp", "mlp6", "cnn"} <= choices["variance"]
    args = ["variance", "--model", "mlp", "--epochs", "1", "--limit", "96", "--bits", "4", "--batches", "2"]
    assert main([*args, "--draws", "2", "--out", str(tmp_path)]) == 0
    assert "fresh QAT mlp" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["train", "reproduce", "variance"])
def test_a_file_where_the_output_folder_should_be_is_one_line(command, tmp_path, capsys):
    (tmp_path / "README.md").write_text("a file")
    assert main([command, "--out", str(tmp_path / "README.md" / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refqt: error: ") and "which is a file, not a folder" in err[0]


def test_variance_flags_that_a_checkpoint_makes_unused(tmp_path, capsys):
    from refqt import checkpoint
    from refqt.experiments.runspec import build_model

    path = tmp_path / "mlp.npz"
    checkpoint.save(path, build_model("mlp", 0))
    args = ["variance", "--model", "mlp", "--checkpoint", str(path), "--epochs", "7", "--bits", "4"]
    assert main([*args, "--batches", "2", "--draws", "2", "--limit", "96", "--out", str(tmp_path / "v")]) == 0
    assert "refqt: warning: --checkpoint ignores --epochs 7" in capsys.readouterr().err
    path.write_bytes(path.read_bytes()[:500])
    assert main([*args, "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "is truncated or not an .npz archive" in err[1] and "refqt train" in err[1]
