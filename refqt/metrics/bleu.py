"""Corpus BLEU-4 (Papineni et al., 2002) and two simpler scores of id sequences.

BLEU compares each hypothesis with its single reference through n-gram
overlap, pooled over the whole corpus before dividing::

    pₙ   = Σ_sent Σ_ngram min(count_hyp, count_ref) / Σ_sent (#n-grams in hyp)   (clipped precision)
    BP   = 1 if c ≥ r else exp(1 − r/c)          c, r: total hypothesis / reference length
    BLEU = 100 · BP · exp(¼ Σₙ₌₁⁴ log pₙ)

**Scale: 0 to 100** (as sacreBLEU reports it); a perfect match scores 100.
There is no smoothing: if some pₙ is 0 (or the hypotheses are empty) BLEU is 0.

Sequences are token lists (strings or ints) or rows of a padded id array;
:func:`strip_sequence` turns a padded row into the tokens before the first EOS.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

PAD_ID = 0
EOS_ID = 2


def strip_sequence(row: Any, pad_id: int = PAD_ID, eos_id: int | None = EOS_ID) -> list[int]:
    """The ids of ``row`` before the first ``eos_id``, with ``pad_id`` removed."""
    out = []
    for token in np.asarray(row).tolist():
        if eos_id is not None and token == eos_id:
            break
        if token != pad_id:
            out.append(token)
    return out


def _as_sequences(batch: Any, pad_id: int, eos_id: int | None) -> list[list[Hashable]]:
    """A 2-d id array -> stripped id lists; a list of token lists passes through."""
    if isinstance(batch, np.ndarray):
        if batch.ndim != 2:
            raise ValueError(f"metrics: an id array must be 2-d (sentences, positions), got {batch.shape}")
        return [strip_sequence(row, pad_id, eos_id) for row in batch]
    return [list(seq) for seq in batch]


def _ngrams(tokens: Sequence[Hashable], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(
    hypotheses: Any, references: Any, max_n: int = 4, pad_id: int = PAD_ID, eos_id: int | None = EOS_ID
) -> float:
    """Corpus BLEU in [0, 100] of ``hypotheses`` against one reference each.

    Parameters
    ----------
    hypotheses, references : list of token lists, or int arrays (sentences, positions)
        Arrays are cut at the first ``eos_id`` and stripped of ``pad_id``.
    max_n : int
        Longest n-gram (4 for BLEU-4); the geometric mean weights each order 1/max_n.

    Returns
    -------
    float
        ``100 · BP · (Πₙ pₙ)^(1/max_n)``; 0 when any pₙ is 0 or nothing was generated.
    """
    hyps = _as_sequences(hypotheses, pad_id, eos_id)
    refs = _as_sequences(references, pad_id, eos_id)
    if len(hyps) != len(refs):
        raise ValueError(f"corpus_bleu: {len(hyps)} hypotheses but {len(refs)} references")
    matched = [0] * max_n
    total = [0] * max_n
    c = sum(len(h) for h in hyps)
    r = sum(len(ref) for ref in refs)
    for hyp, ref in zip(hyps, refs, strict=True):
        for n in range(1, max_n + 1):
            hyp_counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
            matched[n - 1] += sum(min(k, ref_counts[gram]) for gram, k in hyp_counts.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    if c == 0 or min(matched) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / max_n
    brevity = 1.0 if c >= r else math.exp(1.0 - r / c)
    return 100.0 * brevity * math.exp(log_precision)


def token_accuracy(
    hypotheses: Any, references: Any, pad_id: int = PAD_ID, eos_id: int | None = EOS_ID
) -> float:
    """Fraction of reference tokens that the hypothesis has at the same position.

    Both sides are cut at their first EOS and stripped of padding; a
    hypothesis that is too short gets the missing positions wrong, extra
    hypothesis tokens are not counted (exact match catches them). In [0, 1].
    """
    hyps = _as_sequences(hypotheses, pad_id, eos_id)
    refs = _as_sequences(references, pad_id, eos_id)
    if len(hyps) != len(refs):
        raise ValueError(f"token_accuracy: {len(hyps)} hypotheses but {len(refs)} references")
    correct = sum(
        sum(a == b for a, b in zip(h, ref, strict=False)) for h, ref in zip(hyps, refs, strict=True)
    )
    count = sum(len(ref) for ref in refs)
    return correct / count if count else 0.0


def exact_match(hypotheses: Any, references: Any, pad_id: int = PAD_ID, eos_id: int | None = EOS_ID) -> float:
    """Fraction of sentences whose hypothesis equals the reference exactly (after stripping). In [0, 1]."""
    hyps = _as_sequences(hypotheses, pad_id, eos_id)
    refs = _as_sequences(references, pad_id, eos_id)
    if len(hyps) != len(refs):
        raise ValueError(f"exact_match: {len(hyps)} hypotheses but {len(refs)} references")
    return sum(h == ref for h, ref in zip(hyps, refs, strict=True)) / len(refs) if refs else 0.0
