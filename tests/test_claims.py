"""The claims table: verdicts computed from given result dicts (no training here)."""

import math

import pytest

from refqt.experiments.claims import (
    NOT_MEASURED,
    NOT_REPRODUCED,
    REPRODUCED,
    REVERSED,
    claim_fails_less_than_ptq,
    claim_ptq_breaks_first,
    claim_variance_order,
    claims_table,
    format_claims,
    mean_interval,
    setting_summary,
    summarize_translation,
)


def row(ok, n, mean, ci=0.001):
    return {"ok": ok, "n": n, "mean": mean, "ci": ci, "std": 0.0}


def test_interval_is_students_t():
    mean, half = mean_interval([1.0, 3.0])  # s = √2, n = 2: t(0.975, 1) = 12.706
    assert mean == 2.0 and half == pytest.approx(12.7062, abs=1e-3)
    _, half5 = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])  # t(0.975, 4) = 2.7764
    assert half5 == pytest.approx(2.7764 * math.sqrt(2.5) / math.sqrt(5), rel=1e-4)
    assert math.isnan(mean_interval([7.0])[1])


def test_failed_runs_are_counted_not_averaged():
    s = setting_summary([0.97, 0.10, 0.95], [False, True, False])
    assert (s["n"], s["ok"]) == (3, 2)
    assert s["mean"] == pytest.approx(0.96)
    none = setting_summary([0.1, 0.1], [True, True])
    assert none["ok"] == 0 and math.isnan(none["mean"])


def test_collapse_verdicts():
    qat = row(5, 5, 0.97)
    collapse = {
        "QAT": qat,
        "PTQ 5": row(0, 5, float("nan")),
        "PSQ 5": row(5, 5, 0.965),
        "BHQ 5": row(5, 5, 0.97),
    }
    assert claim_ptq_breaks_first("c", collapse, 5, 0.01, 100, {})["verdict"] == REPRODUCED
    degraded = {**collapse, "PTQ 5": row(5, 5, 0.90)}  # all ok but 7 points below QAT
    assert claim_ptq_breaks_first("c", degraded, 5, 0.01, 100, {})["verdict"] == REPRODUCED
    all_hold = {**collapse, "PTQ 5": row(5, 5, 0.968)}
    assert claim_ptq_breaks_first("c", all_hold, 5, 0.01, 100, {})["verdict"] == NOT_REPRODUCED
    reversed_ = {**all_hold, "PSQ 5": row(1, 5, 0.9)}
    assert claim_ptq_breaks_first("c", reversed_, 5, 0.01, 100, {})["verdict"] == REVERSED
    assert claim_ptq_breaks_first("c", {"QAT": qat}, 5, 0.01, 100, {})["verdict"] == NOT_MEASURED


def test_two_bit_order_verdicts():
    labels = ["PTQ 2", "PSQ 2", "BHQ 2"]
    issue = {"PTQ 2": row(5, 5, 0.9), "PSQ 2": row(0, 5, float("nan")), "BHQ 2": row(5, 5, 0.9)}
    assert claim_fails_less_than_ptq("c", issue, labels)["verdict"] == REVERSED
    paper = {"PTQ 2": row(1, 8, 0.5), "PSQ 2": row(8, 8, 0.9), "BHQ 2": row(8, 8, 0.9)}
    assert claim_fails_less_than_ptq("c", paper, labels)["verdict"] == REPRODUCED
    nothing_fails = {k: row(3, 3, 0.9) for k in labels}
    assert claim_fails_less_than_ptq("c", nothing_fails, labels)["verdict"] == NOT_REPRODUCED
    ptq_degrades = {"PTQ 2": row(3, 3, 0.947), "PSQ 2": row(3, 3, 0.982), "BHQ 2": row(3, 3, 0.989)}
    assert claim_fails_less_than_ptq("c", ptq_degrades, labels)["verdict"] == REPRODUCED  # all ok, PTQ lower
    psq_lower = {**nothing_fails, "PSQ 2": row(3, 3, 0.85)}
    assert claim_fails_less_than_ptq("c", psq_lower, labels)["verdict"] == REVERSED
    assert claim_fails_less_than_ptq("c", {}, labels)["verdict"] == NOT_MEASURED


def test_variance_order_verdicts():
    def part(ptq, psq, bhq):
        v = {"ptq": [ptq], "psq": [psq], "bhq": [bhq]}
        return {"bits": [4], "quantization": v, "ratio": v}

    assert claim_variance_order(part(3.0, 2.0, 1.0))["verdict"] == REPRODUCED
    assert claim_variance_order(part(3.0, 1.0, 2.0))["verdict"] == NOT_REPRODUCED
    assert claim_variance_order(part(1.0, 2.0, 3.0))["verdict"] == REVERSED
    assert claim_variance_order(None)["verdict"] == NOT_MEASURED


def translation_run(label, bleu, loss=0.5):
    return {"label": label, "bleu": bleu, "train_loss": loss, "exact_match": 0.3, "seconds": 1.0}


def test_translation_failures_and_means():
    runs = [
        translation_run("PTQ 5", 70.0),
        translation_run("PTQ 5", 0.02),
        translation_run("PTQ 5", 60.0, math.nan),
    ]
    table = summarize_translation(runs)["PTQ 5"]
    assert (table["ok"], table["n"], table["mean"]) == (1, 3, 70.0)


def digits_row(model, label, ok, n, mean, mode="fqt"):
    return {"model": model, "label": label, "mode": mode, "ratio_early": 0.01, **row(ok, n, mean)}


def test_claims_table_from_a_results_dict():
    """The issue's picture: digits hold at ≥ 4 bits, 2-bit stress reversed, transformer PTQ holds."""
    cnn = [digits_row("cnn", lab, 3, 3, 0.97, mode) for lab, mode in (("exact", "exact"), ("QAT", "qat"))]
    cnn += [digits_row("cnn", f"{q} {b}", 3, 3, 0.968) for q in ("PTQ", "PSQ", "BHQ") for b in (8, 5)]
    stress = [
        digits_row("cnn-constant", "PTQ 2", 5, 5, 0.9),
        digits_row("cnn-constant", "PSQ 2", 0, 5, float("nan")),
        digits_row("cnn-constant", "PSQ-ZERO 2", 5, 5, 0.9),
        digits_row("cnn-constant", "BHQ 2", 5, 5, 0.9),
    ]
    runs = [
        translation_run(lab, 70.0) for lab in ("exact", "QAT", "PTQ 5", "PSQ 5", "BHQ 5") for _ in range(5)
    ]
    v = {"ptq": [3.0], "psq": [2.0], "bhq": [1.0]}
    results = {
        "parts": {
            "digits": {"table": cnn + stress},
            "variance": {"bits": [4], "quantization": v, "ratio": v},
            "transformer": {"status": "done", "runs": runs},
        }
    }
    verdicts = [c["verdict"] for c in claims_table(results)]
    assert verdicts == [
        REPRODUCED,  # 8-bit ≈ QAT
        REPRODUCED,  # 5-bit BHQ near QAT
        NOT_REPRODUCED,  # PTQ holds at 5 bits on the digits
        NOT_MEASURED,  # no MLP rows given
        REVERSED,  # 2-bit stress: PSQ fails where PTQ does not
        REPRODUCED,  # variance order
        NOT_REPRODUCED,  # transformer: PTQ 5 holds
        NOT_MEASURED,  # no 8-bit transformer rows
        REPRODUCED,  # PSQ-ZERO fails less than PSQ
    ]
    text = format_claims(claims_table(results))
    assert text.count("\n") == 10 and "0/5 ok" in text and "5/5 ok, 70.0" in text
