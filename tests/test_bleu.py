"""Corpus BLEU-4 against a hand-worked example, its edge cases, token accuracy and exact match."""

import math

import numpy as np
import pytest

from refqt.metrics import corpus_bleu, exact_match, strip_sequence, token_accuracy


def test_bleu_hand_worked_example():
    # hyp "the cat sat on the mat"     (c = 6)
    # ref "the cat is on the mat now"  (r = 7)
    # 1-grams: the×2 (ref has 2) cat sat on mat -> matches the×2, cat, on, mat = 5 of 6
    # 2-grams: the-cat cat-sat sat-on on-the the-mat -> the-cat, on-the, the-mat = 3 of 5
    # 3-grams: the-cat-sat cat-sat-on sat-on-the on-the-mat -> on-the-mat = 1 of 4
    # 4-grams: the-cat-sat-on cat-sat-on-the sat-on-the-mat -> none = 0 of 3 -> BLEU 0.
    # So use a second sentence pair that adds 4-gram matches:
    # hyp "a b c d" = ref "a b c d": 1g 4/4, 2g 3/3, 3g 2/2, 4g 1/1; c += 4, r += 4.
    # Corpus: p1 = 9/10, p2 = 6/8, p3 = 3/6, p4 = 1/4; c = 10, r = 11 -> BP = exp(1 - 11/10).
    # BLEU = 100 · exp(-0.1) · (0.9 · 0.75 · 0.5 · 0.25)^(1/4) = 100 · 0.904837 · 0.084375^(1/4)
    #      = 100 · 0.904837 · 0.538955 = 48.7668
    hyps = [["the", "cat", "sat", "on", "the", "mat"], ["a", "b", "c", "d"]]
    refs = [["the", "cat", "is", "on", "the", "mat", "now"], ["a", "b", "c", "d"]]
    expected = 100 * math.exp(1 - 11 / 10) * (0.9 * 0.75 * 0.5 * 0.25) ** 0.25
    assert corpus_bleu(hyps, refs) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(48.7668, abs=1e-4)
    # The first pair alone has no matching 4-gram: BLEU 0 (no smoothing).
    assert corpus_bleu(hyps[:1], refs[:1]) == 0.0


def test_bleu_clips_repeated_ngrams():
    # "the the the the" vs "the cat ...": unigram 'the' counts at most twice (ref has 2).
    hyps, refs = [["the"] * 4], [["the", "cat", "on", "the"]]
    assert corpus_bleu(hyps, refs, max_n=1) == pytest.approx(100 * 2 / 4)


def test_bleu_perfect_empty_and_long():
    ref = [[5, 6, 7, 8, 9]]
    assert corpus_bleu(ref, ref) == pytest.approx(100.0)
    assert corpus_bleu([[]], ref) == 0.0
    assert corpus_bleu([], []) == 0.0
    # Longer than the reference: no brevity penalty, only precision drops (no bonus for length).
    assert corpus_bleu([[5, 6, 7, 8, 9, 9]], ref) < 100.0
    with pytest.raises(ValueError, match="corpus_bleu: 2 hypotheses but 1 references"):
        corpus_bleu([[1], [2]], [[1]])


def test_id_arrays_are_cut_at_eos_and_stripped_of_padding():
    assert strip_sequence(np.array([5, 6, 2, 7, 0])) == [5, 6]
    hyp = np.array([[5, 6, 7, 8, 2, 9], [4, 4, 2, 0, 0, 0]])
    ref = np.array([[5, 6, 7, 8, 2, 0], [4, 3, 3, 2, 0, 0]])
    assert corpus_bleu(hyp[:1], ref[:1]) == pytest.approx(100.0)
    assert exact_match(hyp, ref) == 0.5
    # ref tokens: 4 + 3 = 7; correct: 4 + 1 (first '4'); the short hypothesis misses the rest.
    assert token_accuracy(hyp, ref) == pytest.approx(5 / 7)
