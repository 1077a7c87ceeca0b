"""``refqt variance`` and ``refqt bench``: files written, one-line errors, the overhead table's layout."""

import json

import numpy as np
import pytest
from docs_pages import console_blocks, shape

from refqt import checkpoint
from refqt.cli import main
from refqt.experiments.bench_cmd import format_bench, format_overhead, overhead_rows
from refqt.models import SmallCNN


@pytest.mark.slow
def test_variance_on_a_tiny_fresh_run_writes_json_and_png(tmp_path, capsys):
    args = ["variance", "--epochs", "1", "--bits", "2,8", "--limit", "96", "--batches", "2", "--draws", "2"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "variance.json").read_text())
    assert result["bits"] == [2, 8] and result["quantizers"] == ["ptq", "psq", "bhq"]
    for q in ("ptq", "psq", "bhq"):
        two, eight = result["quantization"][q]
        assert two > eight > 0  # fewer bits, more variance
        assert result["ratio"][q][0] == pytest.approx(two / result["sampling"])
    assert (tmp_path / "variance.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "QAT sampling variance" in out and "PTQ var" in out
    # the page's fresh-run block (docs/cli/variance.md) shows these lines, numbers and paths aside
    shown = next(b for b in console_blocks("variance.md") if b[0].startswith("$ refqt variance --epochs"))
    assert {shape(line) for line in out.splitlines()} == {shape(line) for line in shown[1:]}, out


def test_variance_errors_are_one_line(tmp_path, capsys):
    assert main(["variance", "--bits", "0-3", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    path = tmp_path / "cnn.npz"
    checkpoint.save(path, SmallCNN(rng=np.random.default_rng(0)))
    assert main(["variance", "--checkpoint", str(path), "--model", "mlp6", "--out", str(tmp_path)]) == 2
    assert "refqt: error:" in capsys.readouterr().err
    assert main(["variance", "--checkpoint", str(tmp_path / "missing.npz"), "--out", str(tmp_path)]) == 2


def _fake_quant(batch: int) -> dict:
    entry = {"range_s": 0.011, "whole_s": 0.05, "into_s": 0.04}
    return {
        "shape": (batch, 64, 56, 56),
        "bits": 8,
        "threads": "BLAS: fake",
        "conv": "fake conv",
        "conv_forward_s": 0.48,
        "ptq": dict(entry),
        "psq": {**entry, "range_s": 0.024},
        "bhq": {**entry, "range_s": 0.024, "transform_find_s": 3e-6, "transform_apply_s": 0.021},
        "shift": dict(entry),
        "floor": {"read_s": 0.004, "copy_s": 0.014, "noise_s": 0.015},
    }


def test_overhead_table_has_the_rebuttals_rows():
    rows = overhead_rows(_fake_quant(128))
    assert [r[0] for r in rows] == [
        "convolution",
        "range finding PTQ",
        "range finding PSQ",
        "range finding BHQ",
        "BHQ transform finding",
        "BHQ transform application",
        "whole quantize-dequantize PTQ",
        "whole quantize-dequantize PSQ",
        "whole quantize-dequantize BHQ",
        "floor: read + write + noise",
    ]
    assert rows[0][1] == pytest.approx(480.0) and rows[4][1] == pytest.approx(0.003)
    assert rows[-1][1] == pytest.approx(33.0) and rows[-1][2] is None  # no paper figure
    assert "a quick look" not in format_overhead(_fake_quant(128))
    md = format_overhead(_fake_quant(8), markdown=True)
    assert "batch 8" in md and "| range finding PSQ | 24.0 | 0.05 | 24 | 0.05 |" in md
    assert "| whole quantize-dequantize BHQ | 40.0 | 0.0833 | - | - |" in md


def test_bench_formatter_on_fake_figures():
    conv = {
        "shape": "x",
        "blas": "BLAS: fake",
        "forward_ms": 1.0,
        "backward_ms": 2.0,
        "output_mib": 1.0,
        "forward_peak_mib": 2.0,
        "backward_peak_mib": 3.0,
    }
    training = {
        "blas": "BLAS: fake",
        "k": 4,
        "digits_cnn_ms": {"exact": 1.0, "qat": 1.5, "fqt-bhq5": 2.0},
        "draws_ms": 3.0,
        "steps_ms": 4.0,
    }
    text = format_bench({"quick": True, "conv": conv, "quant": _fake_quant(8), "training": training})
    assert "refqt forward" in text and "BHQ transform application" in text and "digits CNN step" in text
