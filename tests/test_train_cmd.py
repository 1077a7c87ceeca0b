"""``refqt train`` and ``train_run``: files per epoch, bit-for-bit resume, divergence, one-line errors."""

import io
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from refqt.cli import main
from refqt.experiments import train as train_module
from refqt.experiments.progress import ProgressBar
from refqt.experiments.registry import check_pair, load_dataset
from refqt.experiments.train import TrainingDiverged, train_run
from refqt.experiments.train_config import TrainConfig
from refqt.fqt import quantize
from refqt.fqt.layer import LayerQuantizer
from refqt.models import MLP
from refqt.quant import NonFiniteInputError

# Small and quick: the MLP on the digits, batches of 256 (6 steps an epoch), lr raised to match.
FAST = {"model": "mlp", "dataset": "digits", "batch_size": 256, "lr": 0.2, "epochs": 2}


def _lines(path):
    """metrics.jsonl rows without the wall time (the only field allowed to differ)."""
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _arrays(path):
    with np.load(path / "checkpoint.npz") as f:
        return {k: f[k] for k in f.files if k != "meta"}


def test_a_run_writes_config_metrics_and_checkpoint_per_epoch(tmp_path):
    history = train_run({**FAST, "mode": "qat"}, tmp_path / "run")
    out = tmp_path / "run"
    assert [row["epoch"] for row in history] == [1, 2]
    assert json.loads((out / "config.json").read_text()) == TrainConfig(**FAST, mode="qat").to_dict()
    rows = _lines(out)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["step"] == 2 * 6
    assert set(rows[0]) == set(train_module.EPOCH_FIELDS) - {"seconds"}
    assert rows[0]["mode"] == "qat" and rows[0]["bits"] == 8
    assert rows[1]["train_loss"] < rows[0]["train_loss"] and rows[1]["test_accuracy"] > 0.2  # chance: 0.1
    assert any(k.startswith("model/") for k in _arrays(out)) and any(
        k.startswith("optimizer/") for k in _arrays(out)
    )


def test_resume_continues_bit_for_bit(tmp_path):
    """FQT with BHQ and a cosine schedule: 2 epochs straight == 1 epoch, stop, resume to 2."""
    config = {**FAST, "mode": "fqt", "quantizer": "bhq", "bits": 4}
    straight = train_run(config, tmp_path / "straight")
    first = train_run(config, tmp_path / "split", stop_after=1)
    assert len(first) == 1 and len(_lines(tmp_path / "split")) == 1
    resumed = train_run(config, tmp_path / "split", resume=True)
    assert _lines(tmp_path / "split") == _lines(tmp_path / "straight")
    assert [r["test_loss"] for r in resumed] == [r["test_loss"] for r in straight]
    a, b = _arrays(tmp_path / "straight"), _arrays(tmp_path / "split")
    assert a.keys() == b.keys()
    for key in a:  # weights, momentum buffers: identical bits
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_cli_resume_extends_a_finished_run(tmp_path, capsys):
    """Constant schedule: --epochs 1 then --epochs 2 --resume equals --epochs 2."""
    common = ["train", "--model", "cnn", "--batch-size", "256", "--schedule", "constant", "--quiet"]
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "b")]) == 0
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "b"), "--resume"]) == 0
    assert _lines(tmp_path / "a") == _lines(tmp_path / "b")
    for key, value in _arrays(tmp_path / "a").items():
        np.testing.assert_array_equal(value, _arrays(tmp_path / "b")[key], err_msg=key)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["epochs"] == 2


def test_divergence_stops_with_a_message_and_exit_1(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["train", "--lr", "1e6", "--mode", "exact", "--epochs", "2", "--out", str(out), "--quiet"]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged: training loss is nan" in err[0]
    assert "no checkpoint (no epoch finished)" in err[0]
    assert json.loads((out / "diverged.json").read_text())["epoch"] == 1
    assert (out / "metrics.jsonl").read_text() == "" and not (out / "checkpoint.npz").exists()


def test_divergence_in_epoch_2_keeps_epoch_1(tmp_path, monkeypatch):
    """A loss that turns NaN mid-epoch 2 leaves epoch 1's checkpoint and metrics untouched."""
    real = train_module.ops.cross_entropy
    calls = []

    def nan_after_epoch_1(logits, target, *args, **kwargs):
        calls.append(1)
        loss = real(logits, target, *args, **kwargs)
        return loss * float("nan") if len(calls) > 9 else loss

    monkeypatch.setattr(train_module.ops, "cross_entropy", nan_after_epoch_1)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        train_run({**FAST, "mode": "exact"}, out)
    # Calls 1-6: epoch 1's batches, 7: its evaluation, 8-9: epoch 2's batches 1-2; batch 3 is NaN.
    assert (info.value.epoch, info.value.batch, info.value.step) == (2, 3, 8)
    assert len(info.value.history) == 1 and [r["epoch"] for r in _lines(out)] == [1]
    with np.load(out / "checkpoint.npz") as f:
        assert json.loads(str(f["meta"]))["extra"]["epoch"] == 1
    # Resuming replays epoch 2 from that checkpoint (and, with the fault gone, finishes it).
    monkeypatch.setattr(train_module.ops, "cross_entropy", real)
    assert [r["epoch"] for r in train_run({**FAST, "mode": "exact"}, out, resume=True)] == [1, 2]
    assert not (out / "diverged.json").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bits", "0"], "--bits must be an integer in 1..16, got 0"),
        (["--weight-bits", "17"], "--weight-bits must be an integer in 1..16"),
        (["--lr", "-1"], "--lr must be > 0, got -1.0"),
        (["--resume"], "does not exist; check --out"),
        (["--dataset", "mnist"], "pass its folder as --data-dir"),
        (["--dataset", "cifar10", "--data-dir", "/no/such/folder"], "'/no/such/folder' does not exist"),
        (["--epochs", "0"], "epochs must be an integer >= 1"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refqt: error: ") and message in err[0]
    assert not (tmp_path / "run").exists()  # nothing written for a bad command


def test_unknown_model_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--model", "vgg"])
    assert info.value.code == 2 and "invalid choice: 'vgg'" in capsys.readouterr().err


def test_resume_refuses_another_config_or_model(tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["train", "--epochs", "1", "--batch-size", "256", "--mode", "qat", "--quiet", "--out", out]
    assert main(base) == 0
    assert main(base) == 2  # a second run into the same folder without --resume
    assert "already holds a run" in capsys.readouterr().err
    assert main([*base, "--resume", "--lr", "0.1"]) == 2
    assert "it was started with another config (lr: 0.1 here, 0.05 there)" in capsys.readouterr().err
    # config.json edited to another model: the checkpoint's state keys say no.
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(json.dumps({**config, "model": "cnn"}))
    assert main([*base, "--model", "cnn", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "checkpoint.npz was written by another config (model: 'cnn' here, 'mlp' there)" in err[0]
    )


def test_streams_are_independent():
    """Weights, batch order and every layer's gradient noise come from different streams."""
    config = TrainConfig(**FAST, mode="fqt")
    shuffle = np.random.default_rng(np.random.SeedSequence([0, train_module.SHUFFLE_STREAM]))
    init = np.random.default_rng(np.random.SeedSequence([0, train_module.INIT_STREAM]))
    model = quantize(MLP(rng=np.random.default_rng(0)), config.quant_config())
    first = [g.random() for g in (shuffle, init)]
    first += [m.fqt.rng.random() for m in model.modules() if getattr(m, "fqt", None) is not None]
    assert len(first) == 5 and len(set(first)) == 5


def test_registry_pairs_and_datasets():
    check_pair("cnn", "digits")
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        check_pair("vgg", "digits")
    data = load_dataset("digits")
    assert data.input_shape == (1, 8, 8) and len(data.y_train) + len(data.y_test) == 1797
    with pytest.raises(TypeError, match="unknown fields \\['lr_max'\\]"):
        TrainConfig.from_dict({"lr_max": 1.0})


def test_the_array_api_strict_backend_trains_like_numpy(tmp_path):
    """The loop (accuracy counting included) uses only the array API, and gives NumPy's numbers."""
    config = {**FAST, "epochs": 1, "mode": "fqt", "quantizer": "psq", "bits": 6}
    strict = train_run({**config, "backend": "array_api_strict"}, tmp_path / "strict")[0]
    numpy = train_run(config, tmp_path / "numpy")[0]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        assert strict[key] == pytest.approx(numpy[key], rel=1e-4), key


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_on_a_terminal_only():
    tty = _Terminal()
    with ProgressBar(4, "epoch 1/2", stream=tty, min_interval=0.0) as bar:
        for i in range(4):
            bar.update(1, f"loss {1.0 / (i + 1):.3f}")
    text = tty.getvalue()
    assert "epoch 1/2 [" in text and "4/4  loss 0.250" in text and text.endswith("\r")
    pipe = io.StringIO()
    with ProgressBar(4, stream=pipe) as bar:
        bar.update(4, "done")
    assert pipe.getvalue() == ""


def test_a_tiny_translation_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    """The transformer path (token loss and accuracy, PAD ignored) on a tiny task, FQT per token."""
    from refqt.data import make_translation_task
    from refqt.experiments import registry
    from refqt.models import Seq2SeqTransformer

    def tiny_task(data_dir=None):
        task = make_translation_task(n_train=48, n_test=16, seed=0, max_len=6)
        return registry.Dataset(
            "translation", "translation", task.src_train, task.tgt_train, task.src_test, task.tgt_test,
            classes=task.tgt_vocab, input_vocab=task.src_vocab,
        )  # fmt: skip

    def tiny_model(dataset, rng):
        return Seq2SeqTransformer(dataset.input_vocab, dataset.classes, 16, 2, 1, 32, max_len=16, rng=rng)

    monkeypatch.setitem(registry.DATASETS, "translation", tiny_task)
    monkeypatch.setitem(registry.MODELS, "transformer", tiny_model)
    config = {"model": "transformer", "dataset": "translation", "batch_size": 16, "epochs": 2, "mode": "fqt"}
    straight = train_run(config, tmp_path / "straight")
    train_run(config, tmp_path / "split", stop_after=1)
    resumed = train_run(config, tmp_path / "split", resume=True)
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in straight]
    assert 0 < straight[1]["test_accuracy"] < 1 and _lines(tmp_path / "split") == _lines(
        tmp_path / "straight"
    )
    for key, value in _arrays(tmp_path / "straight").items():
        np.testing.assert_array_equal(value, _arrays(tmp_path / "split")[key], err_msg=key)


def test_a_gradient_that_overflows_first_is_a_divergence_too(tmp_path, capsys, monkeypatch):
    """A gradient quantizer that meets Inf (before the loss is NaN) stops the run as a divergence.

    No learning rate reliably overflows a gradient before the loss (that is luck of the
    trajectory), so the first layer's quantizer is made to meet one in the second epoch.
    """
    real = LayerQuantizer.bifurcate
    calls = []

    def overflowing(self, g, *args, **kwargs):
        if self.name == "net.1":
            calls.append(1)
            if len(calls) == 60:  # epoch 2 of 45 steps
                raise NonFiniteInputError("PSQ(bits=2): input of shape (32, 128) contains NaN or Inf")
        return real(self, g, *args, **kwargs)

    monkeypatch.setattr(LayerQuantizer, "bifurcate", overflowing)
    out = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--mode", "fqt", "--quantizer", "psq", "--bits", "2"]
    assert main([*argv, "--epochs", "2", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "output gradient is NaN or Inf" in err and "epoch 2" in err
    assert (out / "diverged.json").exists() and (out / "checkpoint.npz").exists()


def test_an_activation_that_overflows_in_the_forward_quantizer_is_a_divergence(tmp_path, capsys):
    """lr 1e9 blows the MLP's weights up so that a forward quantizer meets Inf: a divergence, not a crash."""
    out = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--mode", "fqt", "--quantizer", "psq", "--bits", "2", "--lr", "1e9"]
    assert main([*argv, "--epochs", "1", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "training diverged: a layer's input or weight is NaN or Inf" in err
    assert (out / "diverged.json").exists()


# -- durable run folders: every file checked on resume, the previous checkpoint as a fallback -----------


def _files(path):
    """{name: bytes} of every file in a run folder."""
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def _resume_cli(out, *extra):
    return main(["train", *_FAST_ARGV, "--epochs", "3", "--out", str(out), "--quiet", *extra])


_FAST_ARGV = ["--model", "mlp", "--batch-size", "256", "--lr", "0.2", "--mode", "fqt", "--bits", "4"]


def test_resume_needs_a_run_unless_if_possible(tmp_path, capsys):
    out = tmp_path / "typo"
    assert _resume_cli(out, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot resume" in err[0] and "does not exist" in err[0]
    assert not out.exists()
    out.mkdir()
    assert _resume_cli(out, "--resume") == 2 and "holds no run" in capsys.readouterr().err
    assert _resume_cli(out, "--resume-if-possible") == 0  # nothing there: starts
    assert [r["epoch"] for r in _lines(out)] == [1, 2, 3]
    assert _resume_cli(out, "--resume-if-possible") == 0  # finished: nothing more to do
    assert [r["epoch"] for r in _lines(out)] == [1, 2, 3]


def test_a_file_as_the_output_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "README.md").write_text("not a folder")
    for out in (tmp_path / "README.md" / "results", tmp_path / "README.md"):
        assert main(["train", "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "a file, not a folder; choose another --out" in err[0]


def test_options_the_mode_ignores_get_a_warning(tmp_path, capsys):
    argv = ["train", "--mode", "qat", "--quantizer", "ptq", "--bits", "2", "--epochs", "1"]
    assert main([*argv, "--batch-size", "256", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["refqt: warning: --mode qat ignores --quantizer ptq, --bits 2"]
    argv = ["train", "--mode", "exact", "--act-bits", "4", "--epochs", "1", "--batch-size", "256"]
    assert main([*argv, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert "--mode exact ignores --act-bits 4" in capsys.readouterr().err
    assert (
        main(["train", "--epochs", "1", "--batch-size", "256", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    )
    assert capsys.readouterr().err == ""  # FQT uses every option: no warning


def test_the_previous_checkpoint_is_kept(tmp_path):
    config = {**FAST, "epochs": 3, "mode": "fqt", "bits": 4}
    train_run(config, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["checkpoint.npz", "checkpoint.prev.npz", "config.json", "metrics.jsonl", "noise.jsonl"]
    with np.load(tmp_path / "run" / "checkpoint.prev.npz") as f:
        assert json.loads(str(f["meta"]))["extra"]["epoch"] == 2


def _damage_truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


def _damage_pickle(path):
    import pickle

    path.write_bytes(pickle.dumps({"not": "a checkpoint"}))


def _damage_foreign_npz(path):
    with open(path, "wb") as f:
        np.savez(f, weights=np.zeros(3))


def _damage_remove(path):
    path.unlink()  # killed between moving the latest aside and renaming the new one in


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_damage_truncate, "is truncated or not an .npz archive"),
        (_damage_pickle, "holds pickled Python objects"),
        (_damage_foreign_npz, "has no 'meta' entry"),
        (_damage_remove, "is missing"),
    ],
)
def test_a_damaged_latest_checkpoint_resumes_from_the_previous_one(tmp_path, damage, says):
    """The run goes on from epoch 2's checkpoint, says so, cuts the log back, and ends bit for bit."""
    config = {**FAST, "epochs": 4, "mode": "fqt", "quantizer": "bhq", "bits": 4}
    train_run(config, tmp_path / "straight")
    out = tmp_path / "run"
    train_run(config, out, stop_after=3)
    damage(out / "checkpoint.npz")
    notes = []
    history = train_run(config, out, resume=True, warn=notes.append)
    assert len(notes) == 2 and says in notes[0] and "resuming from" in notes[0] and "(epoch 2)" in notes[0]
    assert "allow_pickle" not in notes[0]
    assert "cut back from 3 to 2 epochs" in notes[1]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert _lines(out) == _lines(tmp_path / "straight")
    for key, value in _arrays(tmp_path / "straight").items():
        np.testing.assert_array_equal(value, _arrays(out)[key], err_msg=key)
    assert (out / "checkpoint.damaged.npz").exists() == (damage is not _damage_remove)


def test_a_run_that_cannot_resume_changes_no_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert _resume_cli(out) == 0
    for name in ("checkpoint.npz", "checkpoint.prev.npz"):
        _damage_truncate(out / name)
    before = _files(out)
    assert _resume_cli(out, "--resume", "--epochs", "5") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].count("is truncated or not an .npz archive") == 2
    assert "no file was changed" in err[0] and "Traceback" not in err[0]
    assert _files(out) == before
    (out / "checkpoint.npz").unlink()
    (out / "checkpoint.prev.npz").unlink()
    before = _files(out)
    assert _resume_cli(out, "--resume") == 2  # metrics without a checkpoint: refuses to start over
    assert "lists 3 finished epoch(s) but there is no checkpoint" in capsys.readouterr().err
    assert _files(out) == before


def test_a_damaged_config_or_metrics_file_is_named(tmp_path, capsys):
    out = tmp_path / "run"
    assert _resume_cli(out, "--epochs", "2") == 0
    good = (out / "config.json").read_text()
    for text in ("{not json", "[1, 2]", json.dumps({"lr_max": 1})):
        (out / "config.json").write_text(text)
        before = _files(out)
        assert _resume_cli(out, "--resume") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "config.json is damaged or not a run config" in err[0]
        assert "delete it and resume again" in err[0] and _files(out) == before
    (out / "config.json").unlink()  # the checkpoint holds the config: resuming still works
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n{"epo')
    assert _resume_cli(out, "--resume") == 0
    err = capsys.readouterr().err
    assert "metrics.jsonl is damaged" in err and "rewritten from the checkpoint (2 epochs)" in err
    assert [r["epoch"] for r in _lines(out)] == [1, 2, 3]
    assert json.loads((out / "config.json").read_text()) == json.loads(good) | {"epochs": 3}


def _epochs_written(out):
    try:
        return (out / "metrics.jsonl").read_text().count("\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_killed_at_random_moments_and_resumed_gives_the_uninterrupted_metrics(tmp_path):
    """SIGKILL (no chance to clean up) at seeded random moments, then --resume-if-possible, until done.

    Each kill waits for two to four more finished epochs, then lands at a random moment
    of the next (mid-batch, mid-save, between the checkpoint and the metrics line). The
    finished run's metrics equal an uninterrupted run's, epoch by epoch.
    """
    config = {**FAST, "epochs": 20, "mode": "fqt", "quantizer": "bhq", "bits": 4}
    straight = train_run(config, tmp_path / "straight")
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "refqt", "train", "--model", "mlp", "--batch-size", "256", "--lr", "0.2"]
    argv += ["--bits", "4", "--epochs", "20", "--out", str(out), "--quiet", "--resume-if-possible"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(0)
    kills = 0
    while True:
        target = _epochs_written(out) + rng.randint(2, 4)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and _epochs_written(out) < target:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.1))
        if proc.poll() is not None:
            assert proc.returncode == 0
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert kills < 30
    assert kills >= 3  # the property was exercised, not just one clean run
    assert _lines(out) == [{k: v for k, v in r.items() if k != "seconds"} for r in straight]


def test_a_recipe_run_trains_under_the_recipes_quantizers(tmp_path, capsys):
    from refqt.experiments.train_cmd import default_out
    from refqt.fqt.config import recipe

    config = TrainConfig(**FAST, mode="fqt", recipe="nvfp4", seed=3)
    assert config.quant_config() == recipe("nvfp4", seed=3)
    assert config.label == "NVFP4 recipe" and default_out(config).endswith("-fqt-nvfp4-seed3")
    argv = ["train", "--mode", "fqt", "--recipe", "nvfp4", "--bits", "4", "--batch-size", "256"]
    argv += ["--lr", "0.2"]
    assert main([*argv, "--epochs", "2", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert capsys.readouterr().err.strip() == "refqt: warning: --recipe nvfp4 ignores --bits 4"
    rows = _lines(tmp_path / "r")
    assert [(r["quantizer"], r["bits"]) for r in rows] == [("nvfp4", None)] * 2
    assert rows[1]["test_accuracy"] > 0.2  # it learns (chance: 0.1)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["recipe"] == "nvfp4"


def test_a_recipe_outside_fqt_or_unknown_is_one_line(tmp_path, capsys):
    assert main(["train", "--mode", "qat", "--recipe", "mxfp8", "--out", str(tmp_path / "a")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "refqt: error: --recipe must be used with mode 'fqt' only, got mxfp8"
    )
    with pytest.raises(ValueError, match="recipe must be None or one of"):
        TrainConfig(recipe="fp2")
