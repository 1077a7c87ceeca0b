"""The benchmark commands run end to end on a small array (what they time is not asserted)."""

from refqt.benchmarks.quant import format_figures, quant_benchmark


def test_quant_benchmark_reports_every_quantizer_and_the_floor():
    figures = quant_benchmark(shape=(4, 3, 8, 8), bits=4, repeats=1)
    for name in ("ptq", "psq", "bhq", "shift", "psq-column"):
        assert figures[name]["whole_s"] > 0 and figures[name]["range_s"] > 0
    assert figures["bhq"]["transform_apply_s"] > 0
    assert set(figures["floor"]) == {"read_s", "copy_s", "noise_s"}
    text = format_figures(figures)
    assert "psq-column" in text and "floor on this machine" in text
