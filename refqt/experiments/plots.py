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

COLORS = {"ptq": "tab:red", "psq": "tab:blue", "bhq": "tab:green", "shift": "tab:purple"}


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


def plot_accuracy_vs_bits(
    bits: Sequence[int],
    accuracy: Mapping[str, Sequence[float]],
    reference: Mapping[str, float],
    path: str | os.PathLike,
    title: str = "",
) -> str:
    """Mean test accuracy per quantizer against bits, with exact / QAT as horizontal lines."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for name, values in accuracy.items():
        ax.plot(
            bits,
            100 * np.asarray(values, dtype=np.float64),
            marker="o",
            label=name.upper(),
            color=COLORS.get(name),
        )
    for style, (name, value) in zip(("-", ":"), reference.items(), strict=False):
        ax.axhline(100 * value, color="gray", linestyle=style, label=name)
    ax.set_xlabel("gradient bits")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(list(bits))
    ax.set_title(title)
    ax.legend()
    ax.grid(True, alpha=0.3)
    return _save(fig, path)
