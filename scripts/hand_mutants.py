"""Re-run the hand-written mutants of issue 16 against the quantizer, FQT and statistics tests.

Each mutant is one plausible wrong line in refqt/quant, refqt/fqt or refqt/stats, given
as a text replacement. The script copies ``refqt/``, ``tests/`` and ``pyproject.toml``
into a temporary folder, applies one mutant at a time there (the repository is never
touched) and runs the tests with ``-x``; a mutant is *killed* when they fail.

    python scripts/hand_mutants.py                   # all mutants, the working tree's tests
    python scripts/hand_mutants.py --tests-from main # the same mutants against main's tests
    python scripts/hand_mutants.py --only bonferroni

A mutant whose text no longer occurs (the code was rewritten) is reported ``n/a``:
update its replacement rather than drop it. Run under ``nice``: each surviving mutant
costs a full run of the selected tests (about a minute on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TESTS = [
    "tests/test_stats_definitions.py",
    "tests/test_fqt_wiring.py",
    "tests/test_quant_definitions.py",
    "tests/test_quant.py",
    "tests/test_quant_stats.py",
    "tests/test_quant_fast.py",
    "tests/test_quant_grouping.py",
    "tests/test_bhq_definition.py",
    "tests/test_fqt.py",
    "tests/test_stats.py",
]

# name: (file, original text, mutated text)
MUTANTS: dict[str, tuple[str, str, str]] = {
    "normal-quantile": (
        "refqt/stats/unbiased.py",
        "threshold = t_quantile_upper(alpha / (2 * n_tests), k - 1)",
        "threshold = __import__('statistics').NormalDist().inv_cdf(1 - alpha / (2 * n_tests))",
    ),
    "no-bonferroni": (
        "refqt/stats/unbiased.py",
        "threshold = t_quantile_upper(alpha / (2 * n_tests), k - 1)",
        "threshold = t_quantile_upper(alpha / 2, k - 1)",
    ),
    "one-sided-threshold": (
        "refqt/stats/unbiased.py",
        "threshold = t_quantile_upper(alpha / (2 * n_tests), k - 1)",
        "threshold = t_quantile_upper(alpha / n_tests, k - 1)",
    ),
    "t-dof-k": (
        "refqt/stats/unbiased.py",
        "threshold = t_quantile_upper(alpha / (2 * n_tests), k - 1)",
        "threshold = t_quantile_upper(alpha / (2 * n_tests), k)",
    ),
    "t-sd-ddof0": (
        "refqt/stats/unbiased.py",
        "sd = s.std(axis=0, ddof=1)",
        "sd = s.std(axis=0)",
    ),
    "sampling-variance-no-bessel": (
        "refqt/stats/variance.py",
        "out = _summary(sq, scale=n / (n - 1))",
        "out = _summary(sq)",
    ),
    "quantization-variance-around-draws-mean": (
        "refqt/stats/variance.py",
        "np.sum((fqt[name] - qat[name]) ** 2, axis=1)",
        "np.sum((fqt[name] - fqt[name].mean(axis=0)) ** 2, axis=1)",
    ),
    "stderr-without-sqrt-n": (
        "refqt/stats/variance.py",
        '"stderr": float(v.std(ddof=1) / np.sqrt(v.size))',
        '"stderr": float(v.std(ddof=1))',
    ),
    "eq7-terms-around-draws-mean": (
        "refqt/stats/decomposition.py",
        "samples[setting][j].append(np.sum((draws[n] - qat[n]) ** 2, axis=1))",
        "samples[setting][j].append(np.sum((draws[n] - draws[n].mean(axis=0)) ** 2, axis=1))",
    ),
    "eq8-from-weight-path-quantizer": (
        "refqt/stats/bounds.py",
        "q = layers[name].fqt.grad_quantizer",
        "q = layers[name].fqt.weight_grad_quantizer",
    ),
    "eq8-from-noisy-gradient": (
        "refqt/stats/bounds.py",
        "with capture_gradients(model) as captured, gradient_quantization(model, False):",
        "with capture_gradients(model) as captured:",
    ),
    "same-noise-stream-every-layer": (
        "refqt/fqt/transform.py",
        "np.random.SeedSequence(config.seed, spawn_key=(i,))",
        "np.random.SeedSequence(config.seed)",
    ),
    "weight-grad-quantizer-with-input-bits": (
        "refqt/fqt/layer.py",
        "make_gradient_quantizer(wq, config.weight_grad_bits)",
        "make_gradient_quantizer(wq, config.grad_bits)",
    ),
    "weight-grad-quantizer-per-tensor": (
        "refqt/fqt/config.py",
        'return "psq-column" if self.grad_quantizer in ("psq", "bhq", "shift") else "ptq"',
        'return "ptq"',
    ),
    "conv-input-gradient-unquantized": (
        "refqt/fqt/functions.py",
        "gx = conv2d_grad_input(g_in, w, tuple(x.shape), stride, padding)",
        "gx = conv2d_grad_input(g, w, tuple(x.shape), stride, padding)",
    ),
    "conv-weight-gradient-unquantized": (
        "refqt/fqt/functions.py",
        "gw = conv2d_grad_weight(g_w, x, tuple(w.shape), stride, padding)",
        "gw = conv2d_grad_weight(g, x, tuple(w.shape), stride, padding)",
    ),
    "linear-input-gradient-unquantized": (
        "refqt/fqt/functions.py",
        "gx = xp.matmul(g_in, w) if need[0] else None",
        "gx = xp.matmul(g, w) if need[0] else None",
    ),
    "linear-weight-gradient-unquantized": (
        "refqt/fqt/functions.py",
        "g_rows = xp.reshape(g_w, (-1, g.shape[-1]))",
        "g_rows = xp.reshape(g, (-1, g.shape[-1]))",
    ),
    "psq-bound-twice-too-loose": (
        "refqt/quant/psq.py",
        "return float(length * xp.sum(span * span)) / (4.0 * self.levels**2)",
        "return float(length * xp.sum(span * span)) / (2.0 * self.levels**2)",
    ),
    "ptq-bound-twice-too-loose": (
        "refqt/quant/ptq.py",
        "return x2.size * step * step / 4.0",
        "return x2.size * step * step / 2.0",
    ),
    "bhq-bound-twice-too-loose": (
        "refqt/quant/bhq.py",
        "* span**2) / (4.0 * self.levels**2))",
        "* span**2) / (2.0 * self.levels**2))",
    ),
    "shift-bound-twice-too-loose": (
        "refqt/quant/shift.py",
        "return float(x2.shape[1] * np.sum(steps[nonzero] ** 2) / 4.0)",
        "return float(x2.shape[1] * np.sum(steps[nonzero] ** 2) / 2.0)",
    ),
    "noise-15-bit": (
        "refqt/quant/rounding.py",
        'raw = self._bits.random_raw(words).astype("<u8", copy=False).view("<u2")',
        'raw = self._bits.random_raw(words).astype("<u8", copy=False).view("<u2") & np.uint16(0xFFFE)',
    ),
    "noise-big-endian-pieces": (
        "refqt/quant/rounding.py",
        'raw = self._bits.random_raw(words).astype("<u8", copy=False).view("<u2")',
        'raw = self._bits.random_raw(words).astype(">u8").view(">u2").astype("<u2")',
    ),
    "shift-exponent-at-most-3": (
        "refqt/quant/shift.py",
        "for k in range(1, MAX_SHIFT + 1):",
        "for k in range(1, MAX_SHIFT):",
    ),
    "shift-exponent-one-too-coarse": (
        "refqt/quant/shift.py",
        "shifts = np.where(fits, k, shifts)",
        "shifts = np.where(fits, k - 1, shifts)",
    ),
    "shift-cover-strict": (
        "refqt/quant/shift.py",
        "fits = (mins >= low * f) & (maxs <= high * f)",
        "fits = (mins > low * f) & (maxs < high * f)",
    ),
}


def copy_tree(dest: Path, tests_from: str | None) -> None:
    shutil.copytree(ROOT / "refqt", dest / "refqt", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    if tests_from is None:
        shutil.copytree(ROOT / "tests", dest / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        return
    archive = subprocess.run(
        ["git", "archive", tests_from, "tests"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)


def run_tests(dest: Path, timeout: float) -> tuple[bool, str]:
    """(tests failed, first failing test id or '')."""
    tests = [t for t in TESTS if (dest / t).exists()]
    env = {**os.environ, "PYTHONPATH": str(dest)}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    try:
        done = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return True, "(timeout)"
    failed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return done.returncode != 0, failed[0] if failed else ("" if done.returncode == 0 else done.stdout[-200:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests-from", help="git ref whose tests/ to run (default: the working tree's)")
    parser.add_argument("--only", nargs="*", help="mutant names (default: all)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    names = args.only or list(MUTANTS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="refqt-mutants-") as tmp:
        dest = Path(tmp)
        copy_tree(dest, args.tests_from)
        failed, first = run_tests(dest, args.timeout)
        if failed:
            print(f"the unmutated code already fails: {first}")
            return 2
        for name in names:
            path, old, new = MUTANTS[name]
            target = dest / path
            original = target.read_text()
            if original.count(old) != 1:
                rows.append((name, "n/a", f"text found {original.count(old)}× in {path}"))
                print(f"{name:45s} n/a", flush=True)
                continue
            target.write_text(original.replace(old, new))
            start = time.perf_counter()
            try:
                failed, first = run_tests(dest, args.timeout)
            finally:
                target.write_text(original)
            status = "killed" if failed else "SURVIVED"
            rows.append((name, status, first))
            print(f"{name:45s} {status:8s} {time.perf_counter() - start:5.0f} s  {first}", flush=True)
    killed = sum(status == "killed" for _, status, _ in rows)
    applied = sum(status != "n/a" for _, status, _ in rows)
    print(f"\nkilled {killed} of {applied} applicable mutants")
    return 0 if killed == applied else 1


if __name__ == "__main__":
    sys.exit(main())
