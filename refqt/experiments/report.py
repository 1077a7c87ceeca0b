"""``report.md`` of ``refqt reproduce``: the results dict as Markdown tables, figures and comments.

:func:`write_report` is called after every part, so the report always shows
the finished parts and says which are still pending.
"""

from __future__ import annotations

import os
from typing import Any

from refqt.experiments.bench_cmd import format_overhead

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


def digits_section(part: dict[str, Any]) -> list[str]:
    s = part["setting"]
    lines = [
        f"SGD momentum {s['momentum']}, lr {s['lr']} cosine, batch {s['batch_size']}; "
        f"SmallCNN {s['cnn_epochs']} epochs × {s['seeds']} seed(s), MLP {s['mlp_epochs']} epochs × "
        f"{s['mlp_seeds']} seed(s). Same batch order in every mode for a seed. *ok* counts runs that did "
        "not fail (a run fails when its loss is not finite or its test accuracy is below 20%, twice "
        "chance). *q/s* is the median ratio of gradient quantization variance to QAT sampling variance "
        "(batch 32) after epoch 1 / at the end.",
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
            "| setting | test accuracy (%) | ok | q/s (epoch 1 / end) | s per run |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            name = r["label"] if r["mode"] != "fqt" else f"FQT {r['label']}-bit"
            spread = f" ± {100 * r['std']:.2f}" if r["n"] > 1 else ""
            lines.append(
                f"| {name} | {100 * r['mean']:.2f}{spread} | {r['ok']}/{r['n']} | "
                f"{_ratio(r)} | {r['seconds']:.1f} |"
            )
        lines.append("")
    lines += [f"![accuracy vs bits]({f})" for f in part.get("figures", [])]
    return lines


def transformer_section(part: dict[str, Any] | None) -> list[str]:
    if part is None or part.get("status") != "done":
        reason = part["reason"] if part else "not run yet"
        return [f"*Pending*: {reason}."]
    s = part["setting"]
    lines = [
        f"Synthetic translation task, {s}; per-token gradient quantization in every dense layer, "
        "8-bit activations and weights. BLEU on the test set (paper: IWSLT14 En-De validation BLEU).",
        "",
        "| setting | BLEU | exact match (%) | paper BLEU |",
        "|---|---|---|---|",
    ]
    by_label: dict[str, list[dict]] = {}
    for r in part["runs"]:
        by_label.setdefault(r["label"], []).append(r)
    for label, rs in by_label.items():
        bleu = sum(r["bleu"] for r in rs) / len(rs)
        em = sum(r.get("exact_match", float("nan")) for r in rs) / len(rs)
        lines.append(f"| {label} | {bleu:.2f} | {100 * em:.1f} | {TRANSFORMER_PAPER.get(label, '-')} |")
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
    lines += [f"![variance vs bits]({f})" for f in part["figures"]]
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


def _outcomes(rows: dict[str, dict[str, Any]], bits: int) -> str:
    """``PTQ 3/3 ok (97.1%, q/s 2.1e-01), ...`` for the three quantizers at ``bits``."""
    cells = []
    for q in ("PTQ", "PSQ", "BHQ"):
        r = rows.get(f"{q} {bits}")
        if r is not None:
            ratio = r["ratio_early"] if r["ratio_early"] is not None else float("nan")
            spread = f" ± {100 * r['std']:.1f}" if r["n"] > 1 else ""
            cells.append(f"{q} {r['ok']}/{r['n']} ok ({100 * r['mean']:.1f}{spread}%, q/s {ratio:.1e})")
    return ", ".join(cells)


def findings_section(results: dict[str, Any]) -> list[str]:
    """What differs from the paper, written from the measured numbers."""
    parts = results["parts"]
    lines = []
    if "digits" in parts:
        table = parts["digits"]["table"]
        cnn = {r["label"]: r for r in table if r["model"] == "cnn"}
        mlp = {r["label"]: r for r in table if r["model"] == "mlp6"}
        stress = {r["label"]: r for r in table if r["model"] == "cnn-constant"}
        fqt = [r for r in cnn.values() if r["mode"] == "fqt"]
        high = [r for r in fqt if r["bits"] >= 4]
        if high:
            worst = min(high, key=lambda r: r["mean"])
            gap = 100 * (cnn["QAT"]["mean"] - worst["mean"])
            lines.append(
                f"* **Digits SmallCNN, ≥ 4 bits:** the worst FQT setting ({worst['label']}-bit, "
                f"{100 * worst['mean']:.1f}%, {worst['ok']}/{worst['n']} ok) is {gap:.1f} points below QAT. "
                "The paper sees PTQ degrade or diverge around 5 bits on CIFAR-10 / ImageNet ResNets; "
                "the digits are easy and the network shallow, and its quantization variance stays far "
                "below the sampling variance (q/s), which by the paper's own argument means FQT trains "
                "like QAT."
            )
        for b in sorted({r["bits"] for r in fqt if r["bits"] < 4}):
            lines.append(f"* SmallCNN at {b} bits: {_outcomes(cnn, b)}.")
        if mlp:
            lines.append(
                f"* 6-layer MLP at 2 bits (exact {100 * mlp['exact']['mean']:.1f}%): {_outcomes(mlp, 2)}. "
                "The prototype saw PTQ fail in 7 of 8 seeds here (30 epochs) and PSQ / BHQ in none; "
                "compare the ok counts and q/s (a ratio near or above 1 is what predicts failure)."
            )
        if stress:
            lines.append(
                f"* SmallCNN at 2 bits with a constant learning rate: {_outcomes(stress, 2)}. The prototype "
                "saw 2-bit PTQ and PSQ fail in 8 of 8 seeds here and BHQ in none (without a decaying "
                "learning rate the quantization noise is never damped); compare the ok counts and q/s."
            )
        deltas = [
            cnn[f"{q} 8"]["mean"] - cnn["QAT"]["mean"] for q in ("PTQ", "PSQ", "BHQ") if f"{q} 8" in cnn
        ]
        if deltas:
            lines.append(
                f"* 8-bit FQT minus QAT on the SmallCNN: {', '.join(f'{100 * d:+.2f}' for d in deltas)} "
                "points (PTQ, PSQ, BHQ); the paper: 8-bit FQT ≈ QAT."
            )
    if "variance" in parts:
        v = parts["variance"]
        i = v["bits"].index(4) if 4 in v["bits"] else 0
        order = sorted(v["quantizers"], key=lambda q: v["quantization"][q][i])
        lines.append(
            f"* Measured variance order at {v['bits'][i]} bits: {' < '.join(q.upper() for q in order)} "
            "(the paper: BHQ < PSQ < PTQ)."
        )
    if parts.get("transformer", {}).get("status") == "done":
        lines.append(
            "* Transformer: the synthetic task is far smaller than IWSLT14 and trained for minutes, so BLEU "
            "values are not comparable with the paper's; compare the order of the rows."
        )
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
        "## Where the numbers differ from the paper",
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
