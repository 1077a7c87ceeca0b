"""The benchmark commands run end to end on a small array (what they time is not asserted)."""

import copy

import numpy as np

from refqt.benchmarks.quant import (
    format_figures,
    format_small,
    ptq_numpy_calls,
    quant_benchmark,
    small_benchmark,
)
from refqt.quant import PTQ


def test_quant_benchmark_reports_every_quantizer_and_the_floor():
    figures = quant_benchmark(shape=(4, 3, 8, 8), bits=4, repeats=1)
    for name in ("ptq", "psq", "bhq", "shift", "psq-column"):
        assert figures[name]["whole_s"] > 0 and figures[name]["range_s"] > 0
    assert figures["bhq"]["transform_apply_s"] > 0
    assert set(figures["floor"]) == {"read_s", "copy_s", "noise_s"}
    text = format_figures(figures)
    assert "psq-column" in text and "floor on this machine" in text


def test_small_benchmark_reports_every_quantizer_and_both_layer_paths():
    figures = small_benchmark(shapes=((12, 5), (3, 2, 3, 3)), bits=4, calls=2)
    for row in figures["rows"]:
        assert all(row[name] > 0 for name in ("ptq", "psq", "psq-column", "bhq", "noise_us"))
        assert len(row["pairs"]) == 4 and all(v > 0 for v in row["pairs"].values())
    text = format_small(figures)
    assert "PTQ + PTQ 8 bits: one pass" in text and "(3, 2, 3, 3)" in text
    assert all(row["ptq_calls_us"] > 0 for row in figures["rows"]) and "NumPy calls alone" in text


def test_ptqs_numpy_calls_alone_give_ptqs_numbers():
    """The benchmark's "PTQ's NumPy calls alone" column times the calls that make PTQ's result."""
    x = np.random.default_rng(0).standard_normal((64, 32), dtype=np.float32)
    gen = np.random.default_rng(1)
    want = PTQ(5)(x, copy.deepcopy(gen))
    got = ptq_numpy_calls(x, 5, gen, np.empty_like(x))()
    np.testing.assert_array_equal(got, want)
