"""``refqt reproduce``: the paper's headline results, measured here, into one folder.

Five parts, each written to ``DIR/results.json`` and ``DIR/report.md`` (with
its PNGs) as soon as it finishes, so an interrupted run keeps what it did:

1. ``digits`` -- accuracy table in the layout of the paper's Table 1: the
   digits SmallCNN in exact, QAT and FQT (PTQ / PSQ / BHQ at 8 … 2 bits), and
   a 6-layer MLP at 2 bits; mean ± std over seeds, success counts, and the
   ratio of quantization to sampling gradient variance next to each FQT row;
2. ``transformer`` -- the rebuttal's table: exact, QAT, 8- and 5-bit
   PTQ / PSQ / BHQ on the synthetic translation task (BLEU);
3. ``variance`` -- gradient variance vs bits against the QAT sampling variance;
4. ``anatomy`` -- bin usage of one captured gradient under each quantizer,
   and the L×L matrix of Eq. 7 terms;
5. ``overhead`` -- the quantizers' cost on the rebuttal's conv layer.

Training runs are independent (:class:`~refqt.experiments.runspec.RunSpec`
fixes all their randomness), so ``--jobs N`` runs them in a pool of N
processes with identical results. Every run is pinned to one BLAS thread.

An interrupted reproduction resumes: each training run is added to
``results.json`` (atomically) the moment it finishes, and a second call into
the same folder reuses every finished run whose description and code version
(:func:`code_version`) match, and keeps every finished part; ``--fresh``
repeats everything.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import hashlib
import json
import math
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import refqt
from refqt.benchmarks.quant import LAYER, quant_benchmark
from refqt.experiments import report
from refqt.experiments.claims import (
    claims_table,
    format_claims,
    setting_summary,
    summarize_translation,
    translation_failed,
)
from refqt.experiments.plots import (
    plot_accuracy_vs_bits,
    plot_bin_usage,
    plot_noise_ratios,
    plot_settings,
    plot_variance_terms,
    plot_variance_vs_bits,
)
from refqt.experiments.runspec import RunSpec, build_model, digits_split, run_spec, train
from refqt.experiments.train import check_folder_path, write_atomic
from refqt.experiments.training import classification_loss
from refqt.experiments.transformer_regime import regime_run
from refqt.experiments.variance_cmd import probe_batches, variance_vs_bits
from refqt.fqt import QuantConfig, quantize
from refqt.fqt.config import recipe
from refqt.stats import bin_usage, capture_gradients, variance_terms
from refqt.stats.noise_monitor import SQRT3
from refqt.stats.recipe_audit import recipe_audit

QUANTIZERS = ("ptq", "psq", "bhq")
STRESS_QUANTIZERS = ("ptq", "psq", "psq-zero", "bhq")  # the stress table adds the zero-preserving PSQ


@dataclass(frozen=True)
class Suite:
    """How big a reproduction is: seeds, epochs, bit widths, transformer size."""

    name: str
    seeds: int
    cnn_bits: tuple[int, ...]
    cnn_epochs: int
    mlp_seeds: int
    mlp_epochs: int
    transformer: dict[str, Any] | None  # keyword arguments of train_translation
    transformer_bits: tuple[int, ...]  # FQT bit widths run with transformer_seeds seeds (beside exact, QAT)
    transformer_seeds: int
    overhead_batch: int
    variance_epochs: int
    variance_bits: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
    draws: int = 8  # quantizer draws per batch in every variance measurement
    stress_seeds: int = 0  # SmallCNN at 2 bits with a constant learning rate
    stress_epochs: int = 15
    limit: int | None = None  # training examples (tiny runs only)
    transformer_side_bits: tuple[int, ...] = ()  # more FQT bit widths, with transformer_side_seeds seeds
    transformer_side_seeds: int = 0
    # regime probes only (no BLEU table): (description, changes to the transformer setting)
    transformer_variants: tuple[tuple[str, dict[str, Any]], ...] = ()
    transformer_probe_middle: bool = (
        True  # probe the regime mid-training too (else after epoch 1 and the end)
    )
    # today's block formats through the paper's lens (docs/theory/formats.md):
    recipes: tuple[str, ...] = ("nvfp4", "mxfp8")  # SmallCNN trained under each recipe, every seed
    formats: tuple[str, ...] = ("nvfp4", "nvfp4-rht", "mxfp4", "mxfp8-e4m3")  # rows of the variance part
    noise_every: int = 15  # seed 0's BHQ and recipe runs log ‖G‖/σ_q every this many steps


FULL = Suite(
    name="full",
    seeds=3,
    cnn_bits=(8, 6, 5, 4, 3, 2),
    cnn_epochs=15,
    mlp_seeds=8,
    mlp_epochs=30,
    transformer={
        "n_train": 4000,
        "epochs": 10,
        "d_model": 32,
        "dim_feedforward": 64,
        "layers": 1,
        "lr": 3e-3,
    },
    transformer_bits=(5,),
    transformer_seeds=5,
    transformer_side_bits=(8, 4),
    transformer_side_seeds=2,
    transformer_variants=(
        (
            "post-LN (fairseq's), 2 layers, label smoothing 0.1, no warm-up, "
            "Zipf(1.2) words over 64 nouns, 6 epochs",
            {"layers": 2, "norm_first": False, "label_smoothing": 0.1, "warmup": 0, "zipf": 1.2, "nouns": 64}
            | {"epochs": 6},
        ),
        ("batches of 128 sentences (~1,500 tokens), 10 epochs", {"batch_size": 128}),
    ),
    overhead_batch=LAYER[0],
    variance_epochs=3,
    stress_seeds=5,
    stress_epochs=15,
)
QUICK = Suite(
    name="quick",
    seeds=1,
    cnn_bits=(8, 4, 2),
    cnn_epochs=5,
    mlp_seeds=2,
    mlp_epochs=15,
    transformer={"n_train": 4000, "epochs": 6, "d_model": 32, "dim_feedforward": 64, "layers": 1, "lr": 3e-3},
    transformer_bits=(5,),
    transformer_seeds=1,
    transformer_probe_middle=False,
    overhead_batch=8,
    variance_epochs=2,
    stress_seeds=2,
    stress_epochs=6,
)
TINY = Suite(
    name="tiny",
    seeds=1,
    cnn_bits=(4,),
    cnn_epochs=1,
    mlp_seeds=1,
    mlp_epochs=1,
    transformer={"n_train": 64, "epochs": 1, "d_model": 16, "dim_feedforward": 32, "layers": 1, "n_test": 16},
    transformer_bits=(5,),
    transformer_seeds=1,
    overhead_batch=2,
    variance_epochs=1,
    variance_bits=(2, 8),
    draws=2,
    limit=96,
    stress_seeds=1,
    stress_epochs=1,
)


# -- running specs, serially or in a process pool ------------------------------------------------------


@dataclass(frozen=True)
class TranslationSpec:
    """One transformer run on the synthetic translation task."""

    mode: str
    quantizer: str
    bits: int
    seed: int
    setting: tuple[tuple[str, Any], ...]  # keyword arguments of train_translation

    @property
    def label(self) -> str:
        return (
            f"{self.quantizer.upper()} {self.bits}"
            if self.mode == "fqt"
            else ("QAT" if self.mode == "qat" else "exact")
        )


def run_translation_spec(spec: TranslationSpec) -> dict[str, Any]:
    from refqt.experiments.translation import train_translation

    if spec.mode == "fqt":
        config = QuantConfig(mode="fqt", grad_quantizer=spec.quantizer, grad_bits=spec.bits, seed=spec.seed)
    else:
        config = QuantConfig(mode=spec.mode, seed=spec.seed)
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        scores = train_translation(config, seed=spec.seed, **dict(spec.setting))
    return {**asdict(spec), "label": spec.label, **scores, "seconds": time.perf_counter() - start}


def run_one(spec: RunSpec | TranslationSpec) -> dict[str, Any]:
    """Run one spec at one BLAS thread (the pool's worker function; also used serially)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return run_translation_spec(spec) if isinstance(spec, TranslationSpec) else run_spec(spec)


def run_all(
    specs: Sequence[Any], jobs: int, on_result: Callable[[dict], None] | None = None
) -> list[dict[str, Any]]:
    """Results of ``specs`` in order; ``jobs > 1`` runs them in a 'spawn' process pool.

    ``on_result`` sees each result as it arrives (in a pool: in the order runs
    finish). Inside :func:`reproduce`, a spec already finished in
    ``results.json`` is not run again, and each new result is written there
    as soon as it arrives (see :class:`FinishedRuns`). Results are plain JSON
    values (tuples become lists), whether fresh or read back.
    """
    finished = _FINISHED.get()
    results: list[dict[str, Any] | None] = [None] * len(specs)
    todo: list[int] = []
    for i, spec in enumerate(specs):
        kept = finished.get(spec) if finished is not None else None
        if kept is None:
            todo.append(i)
            continue
        results[i] = kept
    if finished is not None and len(todo) < len(specs):
        finished.say(f"  {len(specs) - len(todo)} of {len(specs)} runs already finished; running {len(todo)}")
    for r in results:
        if r is not None and on_result:
            on_result(r)

    def arrived(i: int, result: dict[str, Any]) -> None:
        results[i] = _plain(result)
        if finished is not None:
            finished.add(specs[i], results[i])
        if on_result:
            on_result(results[i])

    if jobs <= 1 or len(todo) <= 1:
        for i in todo:
            arrived(i, run_one(specs[i]))
    else:
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=min(jobs, len(todo)),
            mp_context=context,
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )
        try:
            futures = {pool.submit(run_one, specs[i]): i for i in todo}
            for future in as_completed(futures):
                arrived(futures[future], future.result())
        except BaseException:  # Ctrl-C or a failed run: start nothing more (what finished is saved)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    return [r for r in results if r is not None]


def _exit_with_parent(parent: int) -> None:
    """In a pool worker: exit once the process that started it is gone (killed with SIGKILL, say).

    Otherwise a killed reproduction would leave its workers waiting forever.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


# -- finished runs and results.json: what makes a reproduction resumable -------------------------------

RESULTS_FILE = "results.json"


def code_version() -> str:
    """``"<refqt version>+<hash of its source files>"``: finished runs are reused by the same code only."""
    root = Path(refqt.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{refqt.__version__}+{digest.hexdigest()[:12]}"


def spec_key(spec: Any) -> str:
    """A run's description as one string: the spec's type and every field (JSON, sorted keys)."""
    return json.dumps({"kind": type(spec).__name__, **asdict(spec)}, sort_keys=True, default=_json_default)


class FinishedRuns:
    """Training runs already finished, by :func:`spec_key`; each new one is saved the moment it ends.

    Parameters
    ----------
    entries : list of dict
        ``{"key", "code", "result"}`` as kept in ``results.json``; only those
        with ``code == code`` are reused.
    code : str
        This code's :func:`code_version`.
    save : callable
        Writes ``results.json`` (called after each new run).
    say : callable
        Progress lines.
    """

    def __init__(
        self, entries: list[dict[str, Any]], code: str, save: Callable[[], None], say: Callable[[str], None]
    ):
        self.entries = entries
        self.code = code
        self.save = save
        self.say = say
        self._index = {e["key"]: e["result"] for e in entries if e.get("code") == code}

    def get(self, spec: Any) -> dict[str, Any] | None:
        return self._index.get(spec_key(spec))

    def add(self, spec: Any, result: dict[str, Any]) -> None:
        key = spec_key(spec)
        self.entries[:] = [e for e in self.entries if e["key"] != key]
        self.entries.append({"key": key, "code": self.code, "result": result})
        self._index[key] = result
        self.save()


_FINISHED: contextvars.ContextVar[FinishedRuns | None] = contextvars.ContextVar("finished_runs", default=None)


@contextlib.contextmanager
def resuming(finished: FinishedRuns) -> Iterator[None]:
    """Within the block, :func:`run_all` reuses and records runs in ``finished``."""
    token = _FINISHED.set(finished)
    try:
        yield
    finally:
        _FINISHED.reset(token)


def read_results(path: str) -> dict[str, Any] | None:
    """The results dict in ``path``, checked; None when there is no file.

    Raises
    ------
    ValueError
        One line: the file is damaged or is not a ``refqt reproduce`` result,
        and what to do.
    """
    if not os.path.exists(path):
        return None
    todo = "move it away, or pass --fresh to start over (it is then replaced)"
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is damaged ({err}); {todo}") from None
    ok = isinstance(results, dict) and isinstance(results.get("parts"), dict)
    entries = results.get("finished_runs", []) if ok else None
    ok = ok and isinstance(entries, list)
    ok = ok and all(isinstance(e, dict) and {"key", "code", "result"} <= set(e) for e in entries)
    if not ok:
        raise ValueError(f"{path} is not the results.json of refqt reproduce; {todo}")
    return results


def write_results(path: str, results: dict[str, Any]) -> None:
    """Write ``results`` as JSON to ``path`` atomically (:func:`~refqt.experiments.train.write_atomic`)."""
    write_atomic(Path(path), json.dumps(results, indent=1, default=_json_default))


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back: lists for tuples, floats for NumPy scalars."""
    return json.loads(json.dumps(value, default=_json_default))


# -- the parts ----------------------------------------------------------------------------------------


def digits_specs(suite: Suite, seeds: int) -> list[RunSpec]:
    common = {"epochs": suite.cnn_epochs, "limit": suite.limit, "variance_draws": suite.draws}
    specs = []
    for seed in range(seeds):
        specs += [RunSpec(model="cnn", mode=m, seed=seed, **common) for m in ("exact", "qat")]
        watch = {"noise_every": suite.noise_every if seed == 0 else 0}  # seed 0's BHQ and recipe runs
        fqt = {"model": "cnn", "mode": "fqt", "seed": seed, **common}
        specs += [
            RunSpec(quantizer=q, bits=b, **fqt, **(watch if q == "bhq" else {}))
            for b in suite.cnn_bits
            for q in QUANTIZERS
        ]
        specs += [RunSpec(recipe=r, **fqt, **watch) for r in suite.recipes]
    mlp = {"epochs": suite.mlp_epochs, "limit": suite.limit, "model": "mlp6", "variance_draws": suite.draws}
    for seed in range(max(seeds, suite.mlp_seeds)):
        specs += [RunSpec(mode=m, seed=seed, **mlp) for m in ("exact", "qat")]
        specs += [RunSpec(mode="fqt", quantizer=q, bits=2, seed=seed, **mlp) for q in QUANTIZERS]
    stress = {"epochs": suite.stress_epochs, "limit": suite.limit, "variance_draws": suite.draws}
    for seed in range(suite.stress_seeds):
        specs += [
            RunSpec(model="cnn", mode="fqt", quantizer=q, bits=2, seed=seed, schedule="constant", **stress)
            for q in STRESS_QUANTIZERS
        ]
    return specs


def summarize_digits(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (group, label): success count, accuracy over the *successful* runs, variance ratios.

    ``mean``, ``ci`` (95 % Student-t half-width) and ``std`` are over the runs
    that did not fail (:func:`refqt.experiments.claims.setting_summary`); a
    failed run only lowers ``ok``. A row's ``model`` is the run's group: the
    model name, suffixed with the schedule when it is not cosine (``"cnn-constant"``).
    """
    rows: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        rows.setdefault((r["group"], r["label"]), []).append(r)
    table = []
    for (model, label), rs in rows.items():
        row = {
            "model": model,
            "label": label,
            "mode": rs[0]["mode"],
            "quantizer": rs[0]["quantizer"],
            "bits": rs[0]["bits"],
            "recipe": rs[0].get("recipe"),
            **setting_summary([r["test_accuracy"] for r in rs], [r["failed"] for r in rs]),
            "seconds": float(np.mean([r["seconds"] for r in rs])),
        }
        for when in ("early", "final"):
            ratios = [r[f"variance_{when}"]["ratio"] for r in rs if f"variance_{when}" in r]
            row[f"ratio_{when}"] = float(np.median(ratios)) if ratios else None
        table.append(row)
    return table


def part_digits(
    suite: Suite, seeds: int, jobs: int, out: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    specs = digits_specs(suite, seeds)
    done = []

    def tick(r: dict) -> None:
        done.append(r)
        progress(
            f"  [{len(done)}/{len(specs)}] {r['model']} {r['label']:<7} seed {r['seed']}: "
            f"{100 * r['test_accuracy']:.1f}%{' FAILED' if r['failed'] else ''} ({r['seconds']:.1f} s)"
        )

    runs = run_all(specs, jobs, tick)
    table = summarize_digits(runs)
    noise = noise_summary(runs)
    figures = digits_figures(table, suite.cnn_bits, out)
    if noise:
        figures.append(noise_figure(runs, out))
    return {
        "runs": runs,
        "table": table,
        "noise": noise,
        "figures": figures,
        "setting": {
            "cnn_epochs": suite.cnn_epochs,
            "mlp_epochs": suite.mlp_epochs,
            "batch_size": 32,
            "lr": 0.05,
            "momentum": 0.9,
            "schedule": "cosine",
            "seeds": seeds,
            "mlp_seeds": max(seeds, suite.mlp_seeds),
            "stress_seeds": suite.stress_seeds,
            "stress_epochs": suite.stress_epochs,
            "test_images": len(digits_split(suite.limit)[3]),
        },
    }


def _bar(row: dict[str, Any], name: str) -> tuple[str, float, float, str]:
    return (name, row["mean"], row["ci"], f"{row['ok']}/{row['n']}")


def _min_over_layers(records: list[dict[str, Any]], path: str) -> tuple[list[int], list[float]]:
    """Per logged step, the smallest ``ratio_<path>`` over the layers: ``(steps, ratios)``."""
    by_step: dict[int, float] = {}
    for rec in records:
        value = rec.get(f"ratio_{path}")
        if value is not None:
            by_step[rec["step"]] = min(by_step.get(rec["step"], math.inf), float(value))
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def noise_summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per monitored run: ‖G‖/σ_q (smallest over layers) at the first and last logged step.

    Also ``below``: the share of logged steps at which some layer's ratio was
    under √3 on either path (the rule of thumb's "low precision stops
    helping", docs/theory/formats.md).
    """
    rows = []
    for r in runs:
        records = r.get("noise")
        if not records:
            continue
        row: dict[str, Any] = {"label": r["label"], "seed": r["seed"], "steps": 0}
        lows: dict[int, bool] = {}
        for path in ("input", "weight"):
            steps, ratios = _min_over_layers(records, path)
            row[f"{path}_first"] = ratios[0] if ratios else None
            row[f"{path}_last"] = ratios[-1] if ratios else None
            for s, v in zip(steps, ratios, strict=True):
                lows[s] = lows.get(s, False) or v < SQRT3
        row["steps"] = len(lows)
        row["below"] = sum(lows.values()) / len(lows) if lows else 0.0
        rows.append(row)
    return rows


def noise_figure(runs: list[dict[str, Any]], out: str) -> str:
    """``noise_ratio.png``: the monitored runs' smallest ‖G‖/σ_q per step, both paths."""
    curves = {
        path: {r["label"]: _min_over_layers(r["noise"], path) for r in runs if r.get("noise")}
        for path in ("input", "weight")
    }
    png = plot_noise_ratios(curves, SQRT3, os.path.join(out, "noise_ratio.png"), title="digits SmallCNN")
    return os.path.basename(png)


def digits_figures(table: list[dict[str, Any]], bits: tuple[int, ...], out: str) -> list[str]:
    """The three accuracy experiments as figures: SmallCNN vs bits, and the 2-bit MLP and stress settings."""
    cnn = {row["label"]: row for row in table if row["model"] == "cnn"}
    figures = []
    if all(f"{q.upper()} {b}" in cnn for q in QUANTIZERS for b in bits) and "QAT" in cnn:
        cells = {q: [cnn[f"{q.upper()} {b}"] for b in bits] for q in QUANTIZERS}
        figures.append(
            plot_accuracy_vs_bits(
                list(bits),
                {q: [r["mean"] for r in rows] for q, rows in cells.items()},
                {"exact": cnn["exact"]["mean"], "QAT": cnn["QAT"]["mean"]},
                os.path.join(out, "digits_accuracy.png"),
                title="digits SmallCNN: test accuracy vs gradient bits",
                errors={q: [r["ci"] for r in rows] for q, rows in cells.items()},
                ok={q: [f"{r['ok']}/{r['n']}" for r in rows] for q, rows in cells.items()},
            )
        )
    panels = []
    for model, title in (
        ("mlp6", "6-layer MLP, 2 bits"),
        ("cnn-constant", "stress: SmallCNN, 2 bits, constant lr"),
    ):
        rows = [r for r in table if r["model"] == model]
        if rows:
            panels.append((title, [_bar(r, r["label"]) for r in rows]))
    if panels:
        figures.append(
            plot_settings(
                panels, os.path.join(out, "digits_2bit.png"), "test accuracy (%), mean ± 95% CI of ok runs"
            )
        )
    return [os.path.basename(f) for f in figures]


def translation_specs(suite: Suite, seeds: int) -> list[TranslationSpec]:
    """exact, QAT and FQT at ``transformer_bits`` for each seed, then FQT at the side bit widths."""
    setting = tuple(sorted(suite.transformer.items()))
    specs = []
    for seed in range(max(seeds, suite.transformer_seeds)):
        specs += [TranslationSpec(m, "none", 0, seed, setting) for m in ("exact", "qat")]
        specs += [
            TranslationSpec("fqt", q, b, seed, setting) for b in suite.transformer_bits for q in QUANTIZERS
        ]
    for seed in range(suite.transformer_side_seeds):
        specs += [
            TranslationSpec("fqt", q, b, seed, setting)
            for b in suite.transformer_side_bits
            for q in QUANTIZERS
        ]
    return specs


def part_transformer(
    suite: Suite, seeds: int, jobs: int, out: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """BLEU of exact / QAT / FQT transformers over seeds, and the gradient regime of one QAT model."""
    specs = translation_specs(suite, seeds)

    def tick(r: dict) -> None:
        progress(
            f"  transformer {r['label']:<7} seed {r['seed']}: BLEU {r['bleu']:.2f}"
            f"{' FAILED' if translation_failed(r) else ''} ({r['seconds']:.0f} s)"
        )

    runs = run_all(specs, jobs, tick)
    epochs = suite.transformer["epochs"]
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        middle = [(epochs + 1) // 2] if suite.transformer_probe_middle else []
        regime = regime_run(
            dict(suite.transformer), sorted({1, *middle, epochs}), draws=suite.draws // 2 or 1
        )
    regime["seconds"] = time.perf_counter() - start
    progress(f"  transformer regime probes: {regime['seconds']:.0f} s")
    variants = []
    for about, changes in suite.transformer_variants:
        start = time.perf_counter()
        setting = {**suite.transformer, **changes}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            probed = regime_run(setting, [setting["epochs"]], draws=suite.draws // 2 or 1)
        variants.append(
            {"about": about, "setting": setting, **probed, "seconds": time.perf_counter() - start}
        )
        progress(f"  transformer regime, {about}: {variants[-1]['seconds']:.0f} s")
    table = summarize_translation(runs)
    order = ["exact", "QAT"] + [
        f"{q.upper()} {b}"
        for b in sorted({*suite.transformer_side_bits, *suite.transformer_bits}, reverse=True)
        for q in QUANTIZERS
    ]
    bars = [_bar(table[lab], lab) for lab in order if lab in table]
    figure = plot_settings(
        [("synthetic translation, per-token gradient quantization", bars)],
        os.path.join(out, "translation_bleu.png"),
        "test BLEU, mean ± 95% CI of ok runs",
        scale=1.0,
    )
    return {
        "status": "done",
        "setting": dict(suite.transformer),
        "runs": runs,
        "table": table,
        "regime": regime,
        "variants": variants,
        "figures": [os.path.basename(figure)],
    }


def trained_cnn(suite: Suite) -> tuple[dict[str, np.ndarray], str]:
    """The state of a digits SmallCNN trained with QAT (parts 3 and 4 measure it), and a description."""
    spec = RunSpec(
        model="cnn",
        mode="qat",
        seed=0,
        epochs=suite.variance_epochs,
        measure_variance=False,
        limit=suite.limit,
    )
    model, trained = train(spec)
    return (
        model.state_dict(),
        f"digits SmallCNN after {spec.epochs} QAT epochs ({100 * trained['test_accuracy']:.1f}%)",
    )


def part_variance(suite: Suite, out: str, state: dict[str, np.ndarray], about: str) -> dict[str, Any]:
    batches = probe_batches(32, 8, suite.limit)
    result = variance_vs_bits(
        "cnn", state, batches, suite.variance_bits, QUANTIZERS, k=suite.draws, formats=suite.formats
    )
    result["model"] = f"{about}, batch 32"
    png = plot_variance_vs_bits(
        result["bits"],
        result["quantization"],
        result["sampling"],
        os.path.join(out, "variance_vs_bits.png"),
        title="digits SmallCNN, batch 32",
    )
    result["figures"] = [os.path.basename(png)]
    result["audit"] = recipe_audits(suite.recipes, state, batches[0])
    return result


def _bias_over_noise(layer: dict[str, Any]) -> float:
    bias, noise = layer["relative_bias"], layer["relative_noise"]
    return bias / noise if noise > 0 else (math.inf if bias > 0 else 0.0)


def recipe_audits(names: Sequence[str], state: dict[str, np.ndarray], batch: Any) -> dict[str, Any]:
    """Theorem 1 audit (:func:`refqt.stats.recipe_audit.recipe_audit`) of each recipe on the trained CNN.

    Per recipe and gradient path: whether E[gradient | batch] = the QAT gradient
    is rejected (overall α = 1e-6), and the relative bias and noise of the layer
    whose bias stands highest above its noise (about 1 under the null).
    """
    out = {}
    for name in names:
        model = quantize(build_model("cnn", 0), recipe(name, seed=0))
        model.load_state_dict(state)
        audit = recipe_audit(model, classification_loss, batch, np.random.default_rng(2), k=48)
        paths = {}
        for path, entry in audit["paths"].items():
            # the layer whose bias stands highest above its own noise (∞ for a deterministic path)
            worst = max(entry["layers"].values(), key=_bias_over_noise)
            paths[path] = {
                "rejected": entry["rejected"],
                "relative_bias": worst["relative_bias"],
                "relative_noise": worst["relative_noise"],
            }
        out[name] = {"alpha": audit["alpha"], "k": audit["k"], "paths": paths}
    return out


def part_anatomy(suite: Suite, out: str, state: dict[str, np.ndarray], bits: int = 4) -> dict[str, Any]:
    batches = probe_batches(32, 2, suite.limit)
    counts: dict[str, list[int]] = {}
    layer = "features.2"  # the second conv: its output gradient passes a ReLU (many exact zeros)
    for q in QUANTIZERS:
        m = build_model("cnn", 0)
        m.load_state_dict(state)
        quantize(m, QuantConfig(mode="fqt", grad_quantizer=q, grad_bits=bits, seed=0))
        with capture_gradients(m) as captured:
            classification_loss(m, batches[0]).backward()
        counts[q] = [int(c) for c in bin_usage(captured[layer][0]["encoded"])]
    grad = captured[layer][0]["grad"]
    zeros = float(np.mean(np.asarray(grad) == 0))
    m = build_model("cnn", 0)
    m.load_state_dict(state)
    quantize(m, QuantConfig(mode="fqt", grad_quantizer="ptq", grad_bits=bits, seed=0))
    terms = variance_terms(m, classification_loss, batches, k=suite.draws)
    f1 = plot_bin_usage(
        counts,
        os.path.join(out, "bin_usage.png"),
        title=f"{layer} output gradient, {bits} bits ({100 * zeros:.0f}% exact zeros)",
    )
    f2 = plot_variance_terms(
        terms["terms"],
        terms["layers"],
        os.path.join(out, "variance_terms.png"),
        title=f"Eq. 7 terms, PTQ {bits} bits",
    )
    return {
        "layer": layer,
        "bits": bits,
        "zero_fraction": zeros,
        "bin_counts": counts,
        "terms": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in terms.items()},
        "figures": [os.path.basename(f1), os.path.basename(f2)],
    }


def part_overhead(suite: Suite) -> dict[str, Any]:
    return quant_benchmark(
        (suite.overhead_batch, *LAYER[1:]), bits=8, repeats=2 if suite.name != "full" else 3
    )


# -- the driver -------------------------------------------------------------------------------------------

PARTS = ("digits", "variance", "anatomy", "overhead", "transformer")
"""The parts of a reproduction, in the order :func:`reproduce` runs them (the transformer, longest, last)."""


def reproduce(
    out: str,
    suite: Suite,
    seeds: int | None = None,
    jobs: int = 1,
    progress: Callable[[str], None] = print,
    fresh: bool = False,
) -> dict[str, Any]:
    """Run every part into ``out``; results.json and report.md are rewritten after each part.

    Resumes what an earlier call into ``out`` left: its finished training runs
    (same description and :func:`code_version`) are not run again, and its
    finished parts (same suite, seeds and code) are kept, so they stay in the
    report. ``fresh`` ignores (and then replaces) that earlier ``results.json``.
    """
    check_folder_path(Path(out))
    path = os.path.join(out, RESULTS_FILE)
    earlier = None if fresh else read_results(path)
    os.makedirs(out, exist_ok=True)
    seeds = seeds or suite.seeds
    code = code_version()
    results: dict[str, Any] = {
        "suite": _plain(asdict(suite)),
        "seeds": seeds,
        "jobs": jobs,
        "code": code,
        "parts": {},
        "seconds": {},
        "finished_runs": [],
    }
    if earlier is not None:
        results["finished_runs"] = [e for e in earlier["finished_runs"] if e["code"] == code]
        same = all(earlier.get(k) == results[k] for k in ("suite", "seeds", "code"))
        if same:
            results["parts"] = dict(earlier["parts"])
            results["seconds"] = {
                k: v for k, v in earlier.get("seconds", {}).items() if k in results["parts"]
            }
        kept = ", ".join(results["parts"]) or "none"
        progress(
            f"resuming {path}: {len(results['finished_runs'])} finished run(s) and the finished parts "
            f"({kept}) are kept (--fresh repeats them)"
        )
    start = time.perf_counter()
    before = sum(v for k, v in results["seconds"].items() if k != "total")

    def save_results() -> None:
        results["seconds"]["total"] = before + time.perf_counter() - start
        write_results(path, results)

    def save() -> None:
        save_results()
        report.write_report(os.path.join(out, "report.md"), results)

    cache: list[tuple[dict[str, np.ndarray], str]] = []

    def probe() -> tuple[dict[str, np.ndarray], str]:
        if not cache:
            cache.append(trained_cnn(suite))
        return cache[0]

    save()
    steps: dict[str, Callable[[], dict]] = {
        "digits": lambda: part_digits(suite, seeds, jobs, out, progress),
        "variance": lambda: part_variance(suite, out, *probe()),
        "anatomy": lambda: part_anatomy(suite, out, probe()[0]),
        "overhead": lambda: part_overhead(suite),
        "transformer": lambda: part_transformer(suite, seeds, jobs, out, progress),
    }
    finished = FinishedRuns(results["finished_runs"], code, save_results, progress)
    with resuming(finished):
        for name in PARTS:
            fn = steps[name]
            if name in results["parts"]:
                progress(f"part {name}: kept from {path}")
                continue
            progress(f"part {name}...")
            t = time.perf_counter()
            results["parts"][name] = _plain(fn())
            results["seconds"][name] = time.perf_counter() - t
            save()
            progress(f"part {name} done in {results['seconds'][name]:.0f} s; wrote {out}/report.md")
    return results


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run(args: argparse.Namespace) -> int:
    suite = TINY if args.tiny else QUICK if args.quick else FULL
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    jobs = args.jobs or default_jobs()
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    check_folder_path(Path(args.out))
    print(f"refqt reproduce ({suite.name}) into {args.out}, {jobs} parallel jobs")
    start = time.perf_counter()
    try:
        results = reproduce(args.out, suite, args.seeds, jobs, fresh=args.fresh)
    except KeyboardInterrupt:
        print(
            f"\nrefqt: interrupted; finished runs and parts are kept in {args.out}/results.json; "
            "run the same command again to go on",
            file=sys.stderr,
        )
        return 130
    print(format_claims(claims_table(results), markdown=False))
    took, total = time.perf_counter() - start, results["seconds"]["total"]
    earlier = f" ({total:.0f} s with the earlier calls)" if total > took + 1 else ""
    print(f"done in {took:.0f} s{earlier}: {args.out}/report.md")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``refqt reproduce``."""
    parser = subparsers.add_parser(
        "reproduce",
        help="the paper's headline results into one folder (report.md)",
        description=(
            "The paper's headline results, measured here, into one folder: report.md, results.json "
            "and the figures. Each finished run and part is kept in results.json at once, and a second "
            "call into the same folder resumes where the first stopped (--fresh starts over)."
        ),
    )
    parser.add_argument("--out", required=True, help="folder for report.md, results.json and the PNGs")
    parser.add_argument(
        "--quick", action="store_true", help="one seed, fewer bit widths, short runs (≤ 5 min)"
    )
    parser.add_argument("--jobs", type=int, default=None, help="parallel training processes (default: CPUs)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per setting (default 3; quick 1)")
    parser.add_argument(
        "--fresh", action="store_true", help="repeat every run and part, even those finished in --out"
    )
    parser.add_argument(
        "--tiny", action="store_true", help=argparse.SUPPRESS
    )  # whole pipeline in seconds, for tests
    parser.set_defaults(run=run)
