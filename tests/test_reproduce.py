"""``refqt reproduce``: the tiny suite writes every part, and a process pool changes no number."""

import json
import pickle
import subprocess
import sys

import pytest
from docs_pages import console_blocks

from refqt.cli import main
from refqt.experiments import report
from refqt.experiments.reproduce import PARTS
from refqt.experiments.runspec import RunSpec, train

pytestmark = pytest.mark.slow


def test_tiny_reproduce_writes_every_part(tmp_path, capsys):
    out = tmp_path / "rq"
    assert main(["reproduce", "--tiny", "--jobs", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["parts"]) == set(PARTS)
    text = (out / "report.md").read_text()
    for heading in (
        "## 1. Accuracy",
        "## 2. Transformer",
        "## 3. Gradient variance",
        "## 4. Bin usage",
        "## 5.",
    ):
        assert heading in text
    assert "*Pending" not in text.split("## 2.")[0]  # part 1 has its table
    assert text.index("## Claims") < text.index("## 1. Accuracy")  # the report opens with the claims
    assert "per-tensor quantizer" in text and "not post-training quantization" in text
    assert "| claim (paper's number) | refqt's evidence | verdict |" in text
    pngs = ("digits_accuracy.png", "digits_2bit.png", "translation_bleu.png", "variance_vs_bits.png")
    for png in (*pngs, "bin_usage.png", "variance_terms.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in text
    listing = next(b for b in console_blocks("reproduce.md") if b[0] == "$ ls -1 rq")[1:]
    assert sorted(p.name for p in out.iterdir()) == listing  # the page's list of the folder
    digits = results["parts"]["digits"]
    labels = {(r["model"], r["label"]) for r in digits["table"]}
    assert {("cnn", "exact"), ("cnn", "QAT"), ("cnn", "PTQ 4"), ("cnn", "BHQ 4"), ("mlp6", "PSQ 2")} <= labels
    # the stress regime: 2 bits, constant learning rate, its own table
    assert {("cnn-constant", f"{q} 2") for q in ("PTQ", "PSQ", "PSQ-ZERO", "BHQ")} <= labels
    assert "Stress: SmallCNN at 2 bits with a constant lr" in text
    assert {r["schedule"] for r in digits["runs"] if r["group"] == "cnn-constant"} == {"constant"}
    fqt = [r for r in digits["runs"] if r["mode"] == "fqt"]
    assert all(r["variance_early"]["ratio"] > 0 for r in fqt)  # a ratio beside every FQT accuracy
    # today's recipes as rows, their and seed 0's BHQ noise ratios monitored, formats as variance rows
    assert {("cnn", "NVFP4 recipe"), ("cnn", "MXFP8 recipe")} <= labels
    assert "| FQT, NVFP4 recipe |" in text and "](noise_ratio.png)" in text
    assert (out / "noise_ratio.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {r["label"] for r in digits["noise"]} == {"BHQ 4", "NVFP4 recipe", "MXFP8 recipe"}
    assert set(results["parts"]["variance"]["formats"]) == {"nvfp4", "nvfp4-rht", "mxfp4", "mxfp8-e4m3"}
    assert "| nvfp4-rht |" in text
    audit = results["parts"]["variance"]["audit"]  # round-to-nearest has no spread: both paths rejected
    assert set(audit) == {"nvfp4", "mxfp8"} and all(p["rejected"] for p in audit["mxfp8"]["paths"].values())
    assert "**Theorem 1 audit of the recipes**" in text
    printed = capsys.readouterr().out
    assert "done in" in printed and "Per-token 5-bit PTQ collapses" in printed  # the claims, printed


def run_all_in_a_fresh_process(specs: list[RunSpec], jobs: int) -> list[dict]:
    """``run_all(specs, jobs)`` in a new Python process, as ``refqt reproduce --jobs N`` runs it."""
    code = (
        "import json, pickle, sys\n"
        "from refqt.experiments.reproduce import run_all\n"
        f"print(json.dumps(run_all(pickle.loads(sys.stdin.buffer.read()), jobs={jobs})))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(specs), capture_output=True, timeout=600
    )
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    return json.loads(run.stdout)


def test_pool_gives_the_same_numbers_as_one_process():
    """``--jobs 2`` and ``--jobs 1`` give the same numbers, to the last bit.

    Both run in fresh processes, as from the command line: every run is pinned
    to one BLAS thread and fixes all its randomness, so the only thing that
    could differ is the process. (The serial run is not done inside pytest: by
    then this process has run a thousand tests, and its state is not what a
    user's ``refqt reproduce --jobs 1`` starts from.)
    """
    specs = [
        RunSpec(
            model="cnn", mode="fqt", quantizer="ptq", bits=3, seed=1, epochs=1, limit=64, variance_draws=2
        ),
        RunSpec(
            model="mlp6", mode="fqt", quantizer="bhq", bits=2, seed=2, epochs=2, limit=64, variance_draws=2
        ),
        RunSpec(model="cnn", mode="qat", seed=1, epochs=1, limit=64),
    ]
    serial = run_all_in_a_fresh_process(specs, jobs=1)
    pooled = run_all_in_a_fresh_process(specs, jobs=2)
    assert [r["label"] for r in serial] == [r["label"] for r in pooled] == ["PTQ 3", "BHQ 2", "QAT"]
    for a, b in zip(serial, pooled, strict=True):
        for key in (
            "label",
            "seed",
            "test_accuracy",
            "history",
            "variance_early",
            "variance_final",
            "failed",
        ):
            assert a.get(key) == b.get(key), (a["label"], key, a.get(key), b.get(key))


def test_report_says_what_is_pending():
    results = {
        "suite": {"name": "quick"},
        "seeds": 1,
        "jobs": 1,
        "seconds": {},
        "parts": {"transformer": {"status": "pending", "reason": "no translation module"}},
    }
    text = report.render(results)
    assert "*Pending*: no translation module." in text
    assert text.count("*Pending.*") == 4


def test_constant_schedule_keeps_the_learning_rate_and_cosine_decays_it():

    common = {"model": "cnn", "mode": "exact", "epochs": 2, "limit": 64, "measure_variance": False}
    _, cosine = train(RunSpec(**common))
    _, constant = train(RunSpec(schedule="constant", **common))
    # Same first epoch (cosine starts at the same lr), different second epoch.
    assert cosine["history"][0] == constant["history"][0]
    assert cosine["history"][1] != constant["history"][1]
    with pytest.raises(ValueError, match="schedule must be"):
        train(RunSpec(schedule="linear", **common))


def test_a_diverging_run_is_a_result_not_a_crash():
    """Huge lr at 2 bits: the gradient overflows (the quantizer refuses it) -- recorded as a failed run."""
    spec = RunSpec(model="mlp6", quantizer="psq", bits=2, lr=1e4, epochs=2, limit=96, measure_variance=False)
    _, result = train(spec)
    assert result["diverged"] and result["failed"]


def test_noise_summary_takes_the_smallest_layer_and_counts_steps_below_sqrt3():
    from refqt.experiments.reproduce import noise_summary

    def rec(step, layer, r_in, r_w):
        return {"step": step, "layer": layer, "ratio_input": r_in, "ratio_weight": r_w}

    records = [
        rec(0, "a", 9.0, 4.0),
        rec(0, "b", 3.0, float("inf")),
        rec(15, "a", 2.0, 1.5),
        rec(15, "b", 5.0, 8.0),
    ]
    records += [rec(30, "a", 1.8, 1.8), rec(30, "b", 1.9, None)]
    (row,) = noise_summary([{"label": "X", "seed": 0, "noise": records}, {"label": "Y", "seed": 0}])
    assert (row["input_first"], row["input_last"]) == (3.0, 1.8)
    assert (row["weight_first"], row["weight_last"]) == (4.0, 1.8)
    assert row["steps"] == 3 and row["below"] == pytest.approx(1 / 3)  # only step 15 (1.5 < √3 ≈ 1.732)
