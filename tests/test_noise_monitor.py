"""‖G‖/σ_q monitor: σ_q against Monte Carlo (t test, false alarms 1e-6, seeded); `refqt train`'s log."""

import json
import math

import numpy as np

from refqt.data import load_digits
from refqt.experiments.train import NOISE_FILE, train_run
from refqt.experiments.training import classification_loss
from refqt.fqt import QuantConfig, quantize
from refqt.fqt.config import recipe
from refqt.fqt.layer import gradient_rows
from refqt.models import MLP, SmallCNN
from refqt.stats.capture import capture_gradients
from refqt.stats.noise_monitor import SQRT3, noise_ratios, read_noise_log
from refqt.stats.student import t_quantile_upper

X, Y = load_digits()
BATCH = (X[:64].astype(np.float32), Y[:64])


def _ratios(config):
    model = quantize(MLP(hidden=64, rng=np.random.default_rng(0), dtype=np.float32), config)
    with capture_gradients(model) as captured:
        classification_loss(model, BATCH).backward()
    return model, captured, noise_ratios(model, captured)


def test_sigma_is_the_root_mean_square_quantization_error():
    for config in (QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=3), recipe("nvfp4")):
        model, captured, rows = _ratios(config)
        row = rows[1]
        layer = dict(model.named_modules())[row["layer"]]
        g = captured[row["layer"]][-1]["grad"]
        view = gradient_rows(g, "linear")
        rng = np.random.default_rng(5)
        err = np.array(
            [np.sum((layer.fqt.grad_quantizer(view, rng).astype(np.float64) - view) ** 2) for _ in range(300)]
        )
        t = (err.mean() - row["sigma_input"] ** 2) / (err.std(ddof=1) / math.sqrt(err.size))
        assert abs(t) < t_quantile_upper(0.5e-6, err.size - 1)
        assert math.isclose(row["ratio_input"], row["grad_norm"] / row["sigma_input"])


def test_fewer_bits_lower_ratio():
    coarse = {
        r["layer"]: r["ratio_input"]
        for r in _ratios(QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=2))[2]
    }
    fine = {
        r["layer"]: r["ratio_input"]
        for r in _ratios(QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=8))[2]
    }
    assert all(fine[k] > 30 * coarse[k] for k in coarse)  # 2^8−1 vs 2^2−1 levels: ~85× in theory
    assert math.sqrt(3) == SQRT3


def test_train_logs_the_ratio_for_fqt_runs_only(tmp_path):
    fast = {"model": "mlp", "dataset": "digits", "batch_size": 256, "lr": 0.2, "epochs": 1}
    train_run({**fast, "mode": "fqt", "quantizer": "psq", "bits": 4}, tmp_path / "fqt")
    rows = read_noise_log(tmp_path / "fqt" / NOISE_FILE)
    assert {r["step"] for r in rows} == {0} and len(rows) == 3
    assert all(r["ratio_input"] > 0 and r["sigma_weight"] > 0 for r in rows)
    assert (
        json.loads((tmp_path / "fqt" / NOISE_FILE).read_text().splitlines()[0])["layer"] == rows[0]["layer"]
    )
    train_run({**fast, "mode": "qat"}, tmp_path / "qat")
    assert not (tmp_path / "qat" / NOISE_FILE).exists()


def test_a_resumed_run_logs_each_step_once(tmp_path):
    fast = {"model": "mlp", "dataset": "digits", "batch_size": 64, "lr": 0.2, "epochs": 6}
    config = {**fast, "mode": "fqt", "quantizer": "psq", "bits": 4}
    train_run(config, tmp_path / "straight")
    train_run(config, tmp_path / "resumed", stop_after=3)
    with open(tmp_path / "resumed" / NOISE_FILE, "a") as f:  # a step logged after the checkpoint, then killed
        f.write(json.dumps({"step": 10**6, "layer": "x"}) + "\n")
    train_run(config, tmp_path / "resumed", resume=True)
    straight = [(r["step"], r["layer"]) for r in read_noise_log(tmp_path / "straight" / NOISE_FILE)]
    resumed = [(r["step"], r["layer"]) for r in read_noise_log(tmp_path / "resumed" / NOISE_FILE)]
    assert len({s for s, _ in straight}) >= 2 and resumed == straight


def test_in_memory_records_equal_the_file_log(tmp_path):
    """``NoiseMonitor(model, None)`` keeps the records the file mode writes, and cuts back alike."""
    from refqt.experiments.training import train_epoch
    from refqt.optim import SGD
    from refqt.stats.noise_monitor import NoiseMonitor, read_noise_log

    x, y = load_digits()
    logs = []
    for path in (tmp_path / "noise.jsonl", None):
        model = quantize(
            SmallCNN(rng=np.random.default_rng(0)),
            QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=4, seed=1),
        )
        monitor = NoiseMonitor(model, path, every=3)
        opt = SGD(model.parameters(), lr=0.05)
        train_epoch(model, opt, x[:256], y[:256], 32, np.random.default_rng(2), noise=monitor)
        monitor.keep_before(6)
        logs.append(read_noise_log(path) if path is not None else monitor.records)
    assert logs[0] == logs[1] and {r["step"] for r in logs[1]} == {0, 3}
    assert len(logs[1]) == 2 * 4  # four quantized layers (2 conv + 2 linear), two logged steps kept


def test_monitoring_changes_no_number_of_the_run():
    """Watching ‖G‖/σ_q draws no noise and alters no gradient: the monitored run trains bit for bit alike."""
    from refqt.experiments.runspec import RunSpec, train

    spec = {"model": "cnn", "mode": "fqt", "quantizer": "bhq", "bits": 4, "epochs": 1, "limit": 256}
    plain = train(RunSpec(**spec, measure_variance=False))[1]
    watched = train(RunSpec(**spec, measure_variance=False, noise_every=3))[1]
    assert watched["history"] == plain["history"] and watched["test_accuracy"] == plain["test_accuracy"]
    assert "noise" not in plain and {r["step"] for r in watched["noise"]} == {0, 3, 6}
