"""The reproduction's figures as PNG files, drawn with matplotlib's non-interactive Agg canvas.

Each function takes plain numbers (what :mod:`refqt.stats` returns, turned
into lists) and a path, writes one PNG and returns the path. No pyplot: a
``Figure`` is drawn on its own ``FigureCanvasAgg``, so nothing touches
global state, opens a window or needs a display -- safe in worker processes
and in tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

COLORS = {
    "ptq": "tab:red",
    "psq": "tab:blue",
    "psq-zero": "tab:cyan",
    "bhq": "tab:green",
    "shift": "tab:purple",
}


def _save(fig: Figure, path: str | os.PathLike) -> str:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return str(path)


def plot_variance_vs_bits(
    bits: Sequence[int],
    quantization: Mapping[str, Sequence[float]],
    sampling: float,
    path: str | os.PathLike,
    title: str = "Gradient variance vs bits",
) -> str:
    """Quantization variance per quantizer against bits (log scale), the QAT sampling variance as a line.

    ``quantization[name][i]`` is the variance at ``bits[i]``.
    """
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for name, values in quantization.items():
        ax.plot(bits, values, marker="o", label=name.upper(), color=COLORS.get(name))
    ax.axhline(sampling, color="black", linestyle="--", label="QAT sampling variance")
    ax.set_yscale("log")
    ax.set_xlabel("gradient bits")
    ax.set_ylabel("variance (sum over parameters)")
    ax.set_xticks(list(bits))
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_bin_usage(counts: Mapping[str, Sequence[int]], path: str | os.PathLike, title: str = "") -> str:
    """One bar chart per quantizer: how many gradient entries landed in each integer code."""
    fig = Figure(figsize=(4 * len(counts), 3.4))
    for i, (name, c) in enumerate(counts.items()):
        ax = fig.add_subplot(1, len(counts), i + 1)
        c = np.asarray(c, dtype=np.float64)
        ax.bar(np.arange(c.size), c / max(c.sum(), 1.0), color=COLORS.get(name), width=0.9)
        used = int(np.count_nonzero(c))
        ax.set_title(f"{name.upper()}: {used} of {c.size} bins used")
        ax.set_xlabel("code")
        ax.set_yscale("log")
        if i == 0:
            ax.set_ylabel("fraction of entries")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_variance_terms(
    terms: Sequence[Sequence[float]], layers: Sequence[str], path: str | os.PathLike, title: str = ""
) -> str:
    """The L×L Eq. 7 matrix as a heatmap (log colour scale): row = quantizer l, column = receiving layer k."""
    t = np.asarray(terms, dtype=np.float64)
    positive = t[t > 0]
    fig = Figure(figsize=(5.5, 4.6))
    ax = fig.add_subplot()
    shown = np.where(t > 0, t, np.nan)
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    image = ax.imshow(shown, cmap="viridis", norm=norm)
    fig.colorbar(image, ax=ax, label="variance added")
    ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right")
    ax.set_yticks(range(len(layers)), layers)
    ax.set_xlabel("receiving layer k (parameter gradient)")
    ax.set_ylabel("quantizer of layer l")
    ax.set_title(title or "Eq. 7 variance terms")
    return _save(fig, path)


def _error(values: Sequence[float]) -> np.ndarray:
    """Half-widths as an array, NaN (one run, no interval) drawn as no bar."""
    v = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(v), v, 0.0)


def plot_accuracy_vs_bits(
    bits: Sequence[int],
    accuracy: Mapping[str, Sequence[float]],
    reference: Mapping[str, float],
    path: str | os.PathLike,
    title: str = "",
    errors: Mapping[str, Sequence[float]] | None = None,
    ok: Mapping[str, Sequence[str]] | None = None,
    ylim: tuple[float, float] = (0.0, 100.0),
) -> str:
    """Mean test accuracy (over successful runs) per quantizer against bits, exact / QAT as lines.

    ``errors[name][i]``: 95 % half-widths (fractions, like ``accuracy``);
    ``ok[name][i]``: a label such as ``"3/3"`` written beside each point. The
    y axis spans ``ylim`` (default the whole 0–100 %: a gap of one test image
    must not look like a collapse). A quantizer with no successful run at a
    width has a NaN mean there and shows only its ok label, at the axis floor.
    """
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for j, (name, values) in enumerate(accuracy.items()):
        y = 100 * np.asarray(values, dtype=np.float64)
        err = 100 * _error(errors[name]) if errors else None
        x = np.asarray(bits, dtype=np.float64) + 0.08 * (j - 1)  # side by side, error bars visible
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name.upper(), color=COLORS.get(name))
        for xi, yi, label in zip(x, y, ok[name] if ok else [], strict=False):
            ax.annotate(
                label,
                (xi, yi if np.isfinite(yi) else ylim[0]),
                textcoords="offset points",
                xytext=(0, -12 - 9 * j),
                ha="center",
                fontsize=7,
                color=COLORS.get(name),
            )
    for style, (name, value) in zip(("-", ":"), reference.items(), strict=False):
        ax.axhline(100 * value, color="gray", linestyle=style, label=name)
    ax.set_ylim(*ylim)
    ax.set_xlabel("gradient bits")
    ax.set_ylabel("test accuracy (%), mean ± 95% CI of ok runs")
    ax.set_xticks(list(bits))
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_settings(
    panels: Sequence[tuple[str, Sequence[tuple[str, float, float, str]]]],
    path: str | os.PathLike,
    ylabel: str,
    scale: float = 100.0,
    ylim: tuple[float, float] = (0.0, 100.0),
) -> str:
    """One bar chart per panel: ``(title, [(setting, mean, ci, ok label), ...])``, error bars, ok counts.

    Means and half-widths are multiplied by ``scale`` (100 for accuracy
    fractions, 1 for BLEU); a NaN mean (no successful run) draws no bar, only
    its ok label. The y axis spans ``ylim`` in every panel.
    """
    fig = Figure(figsize=(4.2 * len(panels), 3.8))
    for i, (title, bars) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        names = [b[0] for b in bars]
        means = scale * np.array([b[1] for b in bars], dtype=np.float64)
        errs = scale * _error([b[2] for b in bars])
        colors = [COLORS.get(n.split()[0].lower(), "gray") for n in names]
        ax.bar(range(len(bars)), np.where(np.isfinite(means), means, 0.0), yerr=errs, capsize=3, color=colors)
        for k, b in enumerate(bars):  # ok counts inside the foot of each bar, clear of the error bars
            has_bar = np.isfinite(means[k]) and means[k] > 0.1 * (ylim[1] - ylim[0])
            ax.text(
                k,
                ylim[0] + 0.02 * (ylim[1] - ylim[0]),
                f"ok\n{b[3]}",
                ha="center",
                va="bottom",
                fontsize=8,
                color="white" if has_bar else "black",
            )
        ax.set_xticks(range(len(bars)), names, rotation=30, ha="right")
        ax.set_ylim(*ylim)
        ax.set_title(title, fontsize=9)
        if i == 0:
            ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def plot_noise_ratios(
    curves: Mapping[str, Mapping[str, tuple[Sequence[int], Sequence[float]]]],
    threshold: float,
    path: str | os.PathLike,
    title: str = "",
) -> str:
    """‖G‖/σ_q against the training step, one panel per gradient path, one line per run.

    ``curves[path][run] = (steps, ratios)`` (a path is ``"input"`` or
    ``"weight"``); the ratio is the smallest over the run's layers at that
    step. A dashed line marks ``threshold`` (the √3 rule of thumb); the y
    axis is logarithmic. Infinite ratios (no noise at all: rounding to
    nearest) are not drawn; the legend says so.
    """
    paths = list(curves)
    fig = Figure(figsize=(4.6 * max(len(paths), 1), 3.6))
    for i, name in enumerate(paths):
        ax = fig.add_subplot(1, max(len(paths), 1), i + 1)
        for run, (steps, ratios) in curves[name].items():
            r = np.array(ratios, dtype=np.float64)
            ok = np.isfinite(r)
            color = COLORS.get(run.split()[0].lower())
            ax.plot(np.array(steps)[ok], r[ok], marker=".", label=run, color=color)
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"√3 ≈ {threshold:.2f}")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_title(f"{name} gradient path{': ' + title if title else ''}", fontsize=9)
        if i == 0:
            ax.set_ylabel("min over layers of ‖G‖ / σ_q")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)
