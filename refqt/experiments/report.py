"""``report.md`` of ``refqt reproduce``: the results dict as Markdown tables, figures and comments.

:func:`write_report` is called after every part, so the report always shows
the finished parts and says which are still pending.
"""

from __future__ import annotations

import math
import os
from typing import Any

from refqt.experiments.bench_cmd import format_overhead
from refqt.experiments.claims import FAIL_BLEU, claims_table, fmt, format_claims, summarize_translation
from refqt.experiments.transformer_regime import format_regime

TRANSFORMER_PAPER = {
    "exact": 34.55,
    "QAT": 34.47,
    "PTQ 8": 34.33,
    "PSQ 8": 34.39,
    "BHQ 8": 34.51,
    "PTQ 5": 0.02,
    "PSQ 5": 33.17,
    "BHQ 5": 33.70,
}


def _ratio(row: dict[str, Any]) -> str:
    early, final = row.get("ratio_early"), row.get("ratio_final")
    if early is None and final is None:
        return "-"
    return f"{early:.1e} / {final:.1e}" if final is not None else f"{early:.1e} / (diverged)"


def _cell(row: dict[str, Any], scale: float = 100.0) -> str:
    """``97.12 ± 0.40`` over the successful runs; ``-`` when none succeeded."""
    if row["ok"] == 0:
        return "-"
    ci = row.get("ci", float("nan"))
    return f"{scale * row['mean']:.2f}" + (f" ± {scale * ci:.2f}" if math.isfinite(ci) else "")


def digits_section(part: dict[str, Any]) -> list[str]:
    s = part["setting"]
    lines = [
        f"SGD momentum {s['momentum']}, lr {s['lr']} cosine, batch {s['batch_size']}; "
        f"SmallCNN {s['cnn_epochs']} epochs × {s['seeds']} seed(s), MLP {s['mlp_epochs']} epochs × "
        f"{s['mlp_seeds']} seed(s). Test set: {s.get('test_images', '?')} held-out digits images "
        f"(one image = {100 / max(s.get('test_images', 1), 1):.2f} points). "
        "Same batch order in every mode for a seed. "
        "*ok* counts runs that did not fail (a run fails when its loss is not finite or its test accuracy is "
        "below 20%, twice chance); the accuracy is the mean ± 95% Student-t interval over the **ok runs "
        "only** (a single ok run has no interval). *q/s* is the median ratio of gradient quantization "
        "variance to QAT sampling variance (batch 32) after epoch 1 / at the end.",
        "",
    ]
    for model, title in (
        ("cnn", "Digits SmallCNN (2 conv + 2 linear)"),
        ("mlp6", "Digits 6-layer MLP, hidden 256"),
        (
            "cnn-constant",
            f"Stress: SmallCNN at 2 bits with a constant lr {s['lr']} (no decay), "
            f"{s.get('stress_epochs', '?')} epochs × {s.get('stress_seeds', '?')} seed(s)",
        ),
    ):
        rows = [r for r in part["table"] if r["model"] == model]
        if not rows:
            continue
        lines += [
            f"**{title}**",
            "",
            "| setting | test accuracy (%) of ok runs | ok | q/s (epoch 1 / end) | s per run |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            name = r["label"] if r["mode"] != "fqt" else f"FQT {r['label']}-bit"
            if r.get("recipe"):
                name = f"FQT, {r['label']}"
            lines.append(f"| {name} | {_cell(r)} | {r['ok']}/{r['n']} | {_ratio(r)} | {r['seconds']:.1f} |")
        lines.append("")
    if any(r["model"] == "cnn-constant" for r in part["table"]):
        lines += [
            "PSQ-ZERO is PSQ with each row's grid shifted so that 0 is a level (as PTQ's per-tensor grid "
            "is): the gradient of a ReLU network is mostly exact zeros (see section 4), which plain PSQ "
            "rounds to ±step at random in every row that holds both signs, and PSQ-ZERO keeps exactly. "
            "Its price is one level spent on 0 (at 2 bits on rows without zeros up to 2.25× PSQ's variance).",
            "",
        ]
    if any(r.get("recipe") for r in part["table"]):
        lines += [
            "*NVFP4 / MXFP8 recipe*: the SmallCNN trained under today's low-precision recipes "
            "(`refqt train --recipe`, docs/theory/formats.md) -- every forward and gradient operand in a "
            "block format: NVFP4 = E2M1 in blocks of 16 with E4M3 × FP32 scales, stochastic rounding "
            "of G and a 16-point random Hadamard transform on the weight gradient; MXFP8 = E4M3 in "
            "blocks of 32, everything rounded to nearest. Their q/s uses the recipe's own gradient "
            "quantizers.",
            "",
        ]
    lines += noise_lines(part.get("noise") or [])
    lines += [f"![accuracy]({f})" for f in part.get("figures", [])]
    return lines


def _ratio_cell(value: float | None) -> str:
    return "–" if value is None else ("∞" if math.isinf(value) else f"{value:.2f}")


def noise_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The ‖G‖/σ_q table of the monitored runs (:func:`refqt.experiments.reproduce.noise_summary`)."""
    if not rows:
        return []
    lines = [
        "**Gradient signal over quantization noise** (seed 0; ‖G‖/σ_q of each layer's output "
        "gradient G against the exact noise σ_q of its quantizer, the smallest over the layers, logged "
        "every few steps; figure `noise_ratio.png`). A rule of thumb from low-precision training says "
        "quantized gradients stop helping once this ratio falls below √3 ≈ 1.73; *below √3* is the "
        "share of logged steps at which some layer was under it. ∞: the path rounds to nearest "
        "(MXFP8), so it has no noise -- only a bias, which this ratio cannot see.",
        "",
        "| run | input path: first → last | weight path: first → last | below √3 |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {_ratio_cell(r['input_first'])} → {_ratio_cell(r['input_last'])} | "
            f"{_ratio_cell(r['weight_first'])} → {_ratio_cell(r['weight_last'])} | "
            f"{100 * r['below']:.0f}% of {r['steps']} |"
        )
    lines.append("")
    return lines


def transformer_section(part: dict[str, Any] | None) -> list[str]:
    if part is None or part.get("status") != "done":
        reason = part["reason"] if part else "not run yet"
        return [f"*Pending*: {reason}."]
    s = part["setting"]
    table = part.get("table") or summarize_translation(part["runs"])
    setting = ", ".join(f"{k} {v}" for k, v in sorted(s.items()))
    lines = [
        f"Synthetic translation task (refqt.data.translation; {setting}; test set {s.get('n_test', 500)} "
        "sentence pairs); pre-LN encoder-decoder, Adam with warm-up and cosine decay; per-token "
        "gradient quantization in every dense layer, 8-bit activations and weights. A run fails when "
        f"its loss is not finite or its test BLEU is below {FAIL_BLEU:.0f}; BLEU and exact match are "
        "means over the ok runs (BLEU ± 95% interval). "
        "Paper: IWSLT14 En-De validation BLEU (rebuttal).",
        "",
        "| setting | test BLEU of ok runs | ok | exact match (%) | s per run | paper BLEU |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in table.items():
        em = f"{100 * row['exact_match']:.1f}" if math.isfinite(row["exact_match"]) else "-"
        lines.append(
            f"| {label} | {_cell(row, 1.0)} | {row['ok']}/{row['n']} | {em} | {row['seconds']:.0f} | "
            f"{TRANSFORMER_PAPER.get(label, '-')} |"
        )
    lines.append("")
    lines += [f"![BLEU]({f})" for f in part.get("figures", [])]
    regime = part.get("regime")
    if regime:
        lines += [
            "",
            f"**The regime, through training** (one QAT model of the same setting, seed 0, test BLEU "
            f"{regime['scores']['bleu']:.1f}). Per quantized layer: the spread of its output gradient's "
            "per-token row ranges (max / median over the tokens of one batch, padding left out), and q/s, "
            "the quantization variance each quantizer would add to that layer's weight gradient over the "
            "sampling variance of that gradient (training batch size). q/s well below 1 predicts that "
            "FQT trains like QAT; near or above 1 that it breaks.",
            "",
            *format_regime(regime),
        ]
    return lines


def variance_section(part: dict[str, Any]) -> list[str]:
    qs = part["quantizers"]
    lines = [
        f"{part['model']}. QAT sampling variance: {part['sampling']:.3e}.",
        "",
        "| bits | " + " | ".join(f"{q.upper()} var (/ samp)" for q in qs) + " |",
        "|---" * (len(qs) + 1) + "|",
    ]
    for i, b in enumerate(part["bits"]):
        cells = [f"{part['quantization'][q][i]:.2e} ({part['ratio'][q][i]:.1e})" for q in qs]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines.append("")
    if part.get("formats"):
        lines += [
            "Block formats as the gradient quantizer Q_b (docs/theory/formats.md), same model and batches:",
            "",
            "| format | quantization var (/ samp) |",
            "|---|---|",
            *(f"| {name} | {v['variance']:.2e} ({v['ratio']:.1e}) |" for name, v in part["formats"].items()),
            "",
        ]
    lines += audit_lines(part.get("audit") or {})
    lines += [f"![variance vs bits]({f})" for f in part["figures"]]
    return lines


def audit_lines(audits: dict[str, Any]) -> list[str]:
    """Theorem 1 audit of each recipe: per gradient path, is its expectation the QAT gradient?"""
    if not audits:
        return []
    first = next(iter(audits.values()))
    lines = [
        f"**Theorem 1 audit of the recipes** on the same model and the first batch "
        f"(docs/theory/formats.md): K = {first['k']} gradient draws per path with only that path "
        f"quantized, projected t tests on every layer's gradient, overall α = {first['alpha']:g}. "
        "Per path, the layer whose *bias* ‖mean of the draws − QAT‖ / ‖QAT‖ stands highest above "
        "its *noise* (the size that bias has from noise alone, so about 1× it when unbiased).",
        "",
        "| recipe | input path (∇X) | weight path (∇W) |",
        "|---|---|---|",
    ]

    def cell(v: dict[str, Any]) -> str:
        verdict = "**biased**" if v["rejected"] else "unbiased (not rejected)"
        return f"{verdict}, bias {v['relative_bias']:.1e} / noise {v['relative_noise']:.1e}"

    for name, a in audits.items():
        lines.append(f"| {name.upper()} | {cell(a['paths']['input'])} | {cell(a['paths']['weight'])} |")
    lines += [
        "",
        "A path is unbiased when its gradient quantizer is (stochastic rounding, no clipping) and its "
        "other GEMM operand is the forward's quantized tensor; rounding G to nearest (MXFP8) or "
        "re-quantizing an operand for the backward (NVFP4's weight path re-quantizes the input along "
        "the tokens, with a Hadamard transform) breaks Theorem 1's condition.",
        "",
    ]
    return lines


def anatomy_section(part: dict[str, Any]) -> list[str]:
    t = part["terms"]
    n = len(t["layers"])
    total = sum(sum(row) for row in t["terms"])
    by_distance = [sum(t["terms"][k + d][k] for k in range(n - d)) / total for d in range(n)]
    lines = [
        f"Bin usage of the {part['layer']} output gradient at {part['bits']} bits "
        f"({100 * part['zero_fraction']:.0f}% of its entries are exact zeros, from the ReLU): "
        + ", ".join(
            f"{q.upper()} uses {sum(1 for c in cs if c)} of {len(cs)} codes"
            for q, cs in part["bin_counts"].items()
        )
        + ".",
        "",
        f"Eq. 7 terms (PTQ, {part['bits']} bits; row l = the quantizer, column k = the layer whose gradient "
        "receives its variance). Share of the total by distance l − k: "
        + ", ".join(f"{d}: {100 * share:.0f}%" for d, share in enumerate(by_distance))
        + " (distance 0 is the layer's own 8-bit weight-gradient path; its input-gradient quantizer "
        "reaches the layers below). Sum of the terms vs all quantizers on, per layer: "
        + ", ".join(f"{a:.2e} vs {b:.2e}" for a, b in zip(t["sum_of_terms"], t["total"], strict=True))
        + ".",
        "",
    ]
    lines += [f"![{f}]({f})" for f in part["figures"]]
    return lines


TERMS = (
    "**Terms.** FQT (fully quantized training) quantizes the backward pass too; QAT only the forward "
    "pass. The gradient quantizers, all unbiased stochastic rounding onto b-bit grids (not post-training "
    "quantization): **PTQ** = per-tensor quantizer (one grid for the whole gradient, 0 on it), "
    "**PSQ** = per-sample quantizer (one grid per row: per sample, or per token in the transformer), "
    "**BHQ** = block-Householder quantizer (a Householder transform spreads large rows over groups of "
    "small ones, then per row), **PSQ-ZERO** = PSQ with 0 on each row's grid (refqt's addition). "
    "*ok n/m*: runs that did not fail out of m seeds; means and ± 95% intervals are over the ok runs "
    "only. *q/s*: quantization variance over sampling variance of the gradient. *The prototype*: an "
    "earlier PyTorch implementation of these digits experiments written for this project (not the "
    "authors' code); its counts are quoted for comparison only."
)


def _variant(v: dict[str, Any]) -> str:
    ratio = v["probes"][-1]["ratio"]
    return (
        f"{v['about']}: PTQ 5-bit q/s {ratio['ptq 5']['total']:.2f} (4-bit {ratio['ptq 4']['total']:.2f}), "
        f"QAT BLEU {v['scores']['bleu']:.0f}"
    )


def findings_section(results: dict[str, Any]) -> list[str]:
    """What the measured numbers say where they differ from the paper, written from them."""
    parts = results["parts"]
    lines = []
    if "digits" in parts:
        table = parts["digits"]["table"]
        stress = {r["label"]: r for r in table if r["model"] == "cnn-constant"}
        zero = parts.get("anatomy", {}).get("zero_fraction")
        if stress:
            z = f"{100 * zero:.0f}%" if zero is not None else "most"
            lines.append(
                "* **2-bit stress, the order:** "
                + "; ".join(f"{lab} {fmt(r)}" for lab, r in stress.items())
                + f". refqt's PTQ keeps 0 exactly on its grid (the authors' rule); plain PSQ does not, so "
                f"the {z} exact zeros of the ReLU network's gradient (section 4) become ±step noise in every "
                "row that holds both signs. PSQ-ZERO, PSQ with the row grid shifted so 0 is a level, "
                "isolates that cause: where it holds and PSQ fails, the zeros, not the per-row scale, "
                "decide the 2-bit order. The paper does not report this."
            )
    if "variance" in parts:
        v = parts["variance"]
        i = v["bits"].index(4) if 4 in v["bits"] else 0
        order = sorted(v["quantizers"], key=lambda q: v["quantization"][q][i])
        lines.append(
            f"* Measured variance order at {v['bits'][i]} bits: {' < '.join(q.upper() for q in order)} "
            "(the paper: BHQ < PSQ < PTQ); q/s far below 1 at ≥ 4 bits on the digits is why every "
            "quantizer trains like QAT there."
        )
    tr = parts.get("transformer", {})
    if tr.get("status") == "done" and tr.get("regime", {}).get("probes"):
        last = tr["regime"]["probes"][-1]
        r5 = {k: v["total"] for k, v in last["ratio"].items()}
        spread = max(v for v in last["spread"].values() if math.isfinite(v))
        table = tr.get("table") or summarize_translation(tr["runs"])
        ptq = table.get("PTQ 5")
        text = (
            f"* **Transformer, why PTQ holds at 5 bits here:** PTQ 5-bit {fmt(ptq, 1.0)} BLEU. At the end "
            f"of training the per-token gradient rows of a layer differ in range by up to {spread:.0f}× "
            f"(max / median), which makes PTQ's variance {r5['ptq 5'] / r5['psq 5']:.0f}× PSQ's, yet "
            f"PTQ's total q/s is {r5['ptq 5']:.2f} at 5 bits"
            + (f" and {r5['ptq 4']:.2f} at 4 bits" if "ptq 4" in r5 else "")
            + ": below the sampling noise, so it trains like QAT. The rebuttal's collapse needs q/s near "
            "or above 1."
        )
        variants = tr.get("variants") or []
        if variants:
            text += " Regimes probed for a larger spread (seed 0, at the end of training): " + "; ".join(
                _variant(v) for v in variants if v["probes"]
            )
            text += (
                ". None of these reaches q/s ≈ 1 at 5 bits, and no configuration searched within this "
                "suite's budget collapsed per-token 5-bit PTQ; 4-bit PTQ comes closest (q/s near 1 in "
                "the encoder's layers)."
            )
        lines.append(text)
    if "overhead" in parts and parts["overhead"]["shape"][0] != 128:
        lines.append(
            f"* The overhead table used batch {parts['overhead']['shape'][0]} (a quick run), not 128."
        )
    return lines or ["*Nothing measured yet.*"]


def render(results: dict[str, Any]) -> str:
    parts = results["parts"]
    suite = results["suite"]
    lines = [
        "# refqt reproduction report",
        "",
        f"Suite **{suite['name']}**, {results['seeds']} seed(s), {results['jobs']} parallel job(s); "
        f"{results['seconds'].get('total', 0):.0f} s so far. Parts finished: "
        f"{', '.join(parts) or 'none'}.",
        "",
        TERMS,
        "",
        "## Claims",
        "",
        "Verdicts by fixed rules (refqt/experiments/claims.py): *reproduced* -- refqt shows what the paper "
        "claims; *not reproduced* -- it does not (e.g. nothing fails where the paper saw a collapse); "
        "*reversed* -- refqt shows the opposite order. Near = within 1 point of accuracy or 2 BLEU of QAT, "
        "all runs ok.",
        "",
        format_claims(claims_table(results)),
        "",
        "## Notes",
        "",
        *findings_section(results),
        "",
        "## 1. Accuracy (layout of the paper's Table 1)",
        "",
        *(digits_section(parts["digits"]) if "digits" in parts else ["*Pending.*"]),
        "",
        "## 2. Transformer (layout of the rebuttal's table)",
        "",
        *transformer_section(parts.get("transformer")),
        "",
        "## 3. Gradient variance vs bits",
        "",
        *(variance_section(parts["variance"]) if "variance" in parts else ["*Pending.*"]),
        "",
        "## 4. Bin usage and Eq. 7 variance terms",
        "",
        *(anatomy_section(parts["anatomy"]) if "anatomy" in parts else ["*Pending.*"]),
        "",
        "## 5. Quantizer overhead on the rebuttal's conv layer (one core)",
        "",
        *([format_overhead(parts["overhead"], markdown=True)] if "overhead" in parts else ["*Pending.*"]),
        "",
    ]
    return "\n".join(lines)


def write_report(path: str, results: dict[str, Any]) -> None:
    """Render ``results`` and write it to ``path`` (written whole, then renamed over it)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(render(results))
    os.replace(tmp, path)
