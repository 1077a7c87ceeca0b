"""A synthetic translation task, generated from a seed: a toy language pair to train a transformer on.

The source language has four word classes -- nouns, adjectives, verbs and
"reverse" markers -- and sentences of ``min_len``..``max_len`` words drawn
independently by class. The target is the source read left to right with
these rules (a fixed random dictionary ``π`` maps each source word to a target
word):

1. ``ADJ NOUN`` → ``π(NOUN) π(ADJ)``: adjectives follow their noun, as in French.
2. ``VERB`` → ``π(VERB) TENSE``: every verb is followed by one of two tense
   particles, chosen by the verb (its fertility is 2, so lengths differ).
3. ``MARK w₁ … wₖ`` → ``π(MARK) π(wₖ) … π(w₁)``: a marker reverses the next
   ``k = min(reverse_span, words left)`` words (translated word by word).
4. Any other word ``w`` → ``π(w)``.

A model must learn the dictionary, the local swaps and the marked reversals;
exact-match accuracy on whole sentences separates a model that learned all
three from one that learned the dictionary only.

Special ids, shared by both languages: ``PAD = 0``, ``BOS = 1``, ``EOS = 2``;
words start at 3. Source rows are the words then padding; target rows are the
words, ``EOS``, then padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

PAD, BOS, EOS = 0, 1, 2
FIRST_WORD = 3
CLASS_NAMES = ("noun", "adjective", "verb", "marker")


@dataclass(frozen=True)
class TranslationTask:
    """A generated parallel corpus as padded int64 id arrays.

    Attributes
    ----------
    src_train, src_test : ndarray (N, max_src_len)
        Source ids, padded with ``PAD``.
    tgt_train, tgt_test : ndarray (N, max_tgt_len)
        Target ids followed by ``EOS``, padded with ``PAD``.
    src_vocab, tgt_vocab : int
        Vocabulary sizes, special ids included.
    max_src_len, max_tgt_len : int
        Widths of the arrays (the target width counts the EOS).
    """

    src_train: np.ndarray
    tgt_train: np.ndarray
    src_test: np.ndarray
    tgt_test: np.ndarray
    src_vocab: int
    tgt_vocab: int
    max_src_len: int
    max_tgt_len: int


@dataclass(frozen=True)
class _Grammar:
    word_class: np.ndarray  # (n_words,) class index of each source word
    dictionary: np.ndarray  # (n_words,) target id of each source word
    tense: np.ndarray  # (n_words,) target id of the tense particle of each verb


def _make_grammar(class_sizes: tuple[int, int, int, int], rng: np.random.Generator) -> _Grammar:
    n_words = sum(class_sizes)
    word_class = np.repeat(np.arange(4), class_sizes)
    dictionary = FIRST_WORD + rng.permutation(n_words)
    particles = FIRST_WORD + n_words + np.arange(2)
    tense = particles[rng.integers(0, 2, size=n_words)]
    return _Grammar(word_class, dictionary, tense)


def translate(words: list[int], grammar: _Grammar, reverse_span: int) -> list[int]:
    """Apply the task's rules to one source sentence (word ids ≥ 3, no padding)."""
    noun, adjective, verb, marker = range(4)
    cls = [int(grammar.word_class[w - FIRST_WORD]) for w in words]
    out: list[int] = []
    i = 0
    while i < len(words):
        w, c = words[i] - FIRST_WORD, cls[i]
        if c == marker:
            span = [v - FIRST_WORD for v in words[i + 1 : i + 1 + reverse_span]]
            out.append(int(grammar.dictionary[w]))
            out.extend(int(grammar.dictionary[v]) for v in reversed(span))
            i += 1 + len(span)
        elif c == adjective and i + 1 < len(words) and cls[i + 1] == noun:
            out.extend([int(grammar.dictionary[words[i + 1] - FIRST_WORD]), int(grammar.dictionary[w])])
            i += 2
        elif c == verb:
            out.extend([int(grammar.dictionary[w]), int(grammar.tense[w])])
            i += 1
        else:
            out.append(int(grammar.dictionary[w]))
            i += 1
    return out


def make_translation_task(
    n_train: int = 4000,
    n_test: int = 500,
    seed: int = 0,
    class_sizes: tuple[int, int, int, int] = (16, 10, 10, 2),
    class_probs: tuple[float, float, float, float] = (0.4, 0.25, 0.25, 0.1),
    min_len: int = 4,
    max_len: int = 12,
    reverse_span: int = 3,
    zipf: float = 0.0,
) -> TranslationTask:
    """Generate the task deterministically from ``seed`` (same seed, same arrays).

    Parameters
    ----------
    n_train, n_test : int
        Sentence pairs in each split (drawn independently; a test sentence may
        repeat a training one by chance, rarely at the default lengths).
    seed : int
        Seeds the dictionary and the sentences.
    class_sizes : (nouns, adjectives, verbs, markers)
        Source words per class.
    class_probs : 4 floats summing to 1
        Probability of each class at each position.
    min_len, max_len : int
        Source length range, inclusive.
    reverse_span : int
        Words reversed after a marker.
    zipf : float
        Word frequencies inside a class: 0 uniform (the default); ``a > 0``
        Zipf-like, word r of a class (r = 1, 2, …) drawn ∝ ``r^(−a)``, so the
        vocabulary has rare words as a natural corpus does.
    """
    if len(class_sizes) != 4 or min(class_sizes) < 1:
        raise ValueError(f"make_translation_task: class_sizes must be 4 positive ints, got {class_sizes}")
    if not abs(sum(class_probs) - 1.0) < 1e-9 or len(class_probs) != 4:
        raise ValueError(
            f"make_translation_task: class_probs must be 4 numbers summing to 1, got {class_probs}"
        )
    if not zipf >= 0:
        raise ValueError(f"make_translation_task: zipf must be ≥ 0, got {zipf}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"make_translation_task: need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = np.random.default_rng(seed)
    grammar = _make_grammar(class_sizes, rng)
    starts = np.concatenate([[0], np.cumsum(class_sizes)[:-1]])
    n_words = sum(class_sizes)
    word_probs = [np.arange(1, size + 1, dtype=np.float64) ** -zipf for size in class_sizes]
    word_probs = [p / p.sum() for p in word_probs]
    # Longest target: every word a verb (2 tokens each), plus EOS.
    max_tgt_len = 2 * max_len + 1

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        src = np.full((n, max_len), PAD, dtype=np.int64)
        tgt = np.full((n, max_tgt_len), PAD, dtype=np.int64)
        lengths = rng.integers(min_len, max_len + 1, size=n)
        for row, length in enumerate(lengths):
            classes = rng.choice(4, size=length, p=class_probs)
            if zipf == 0:
                within = rng.integers(0, np.asarray(class_sizes)[classes])
            else:
                within = np.array(
                    [rng.choice(class_sizes[c], p=word_probs[c]) for c in classes], dtype=np.int64
                )
            words = FIRST_WORD + starts[classes] + within
            out = [*translate(words.tolist(), grammar, reverse_span), EOS]
            src[row, :length] = words
            tgt[row, : len(out)] = out
        return src, tgt

    src_train, tgt_train = split(n_train)
    src_test, tgt_test = split(n_test)
    return TranslationTask(
        src_train,
        tgt_train,
        src_test,
        tgt_test,
        FIRST_WORD + n_words,
        FIRST_WORD + n_words + 2,
        max_len,
        max_tgt_len,
    )


def teacher_forcing_pair(tgt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decoder input and output from target rows (words, EOS, PAD...).

    ``tgt_in = [BOS, y₁, …, yₙ]`` and ``tgt_out = [y₁, …, yₙ, EOS]``, both
    padded to the batch's longest target: the decoder sees the words so far
    and predicts the next one.
    """
    width = int(np.max(np.sum(tgt != PAD, axis=1)))
    tgt_out = tgt[:, :width]
    shifted = np.concatenate([np.full((len(tgt), 1), BOS, dtype=tgt.dtype), tgt_out[:, :-1]], axis=1)
    tgt_in = np.where(shifted == EOS, PAD, shifted)
    return tgt_in, tgt_out


def iterate_translation_batches(
    src: np.ndarray,
    tgt: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    shuffle: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(src, tgt_in, tgt_out)`` int64 batches covering the corpus once.

    Each batch is cut to its own longest source and target, so short batches
    cost less. ``rng`` (a ``numpy.random.Generator``) draws the order and is
    required when ``shuffle``.

    Yields
    ------
    src : (B, Ls)
    tgt_in, tgt_out : (B, Lt)
    """
    if len(src) != len(tgt):
        raise ValueError(f"iterate_translation_batches: src {src.shape} and tgt {tgt.shape} differ in length")
    if batch_size < 1:
        raise ValueError(f"iterate_translation_batches: batch_size must be >= 1, got {batch_size}")
    if shuffle and rng is None:
        raise ValueError("iterate_translation_batches: shuffle=True needs rng= (a numpy.random.Generator)")
    order = rng.permutation(len(src)) if shuffle else np.arange(len(src))
    for start in range(0, len(src), batch_size):
        idx = order[start : start + batch_size]
        src_b = src[idx]
        src_b = src_b[:, : max(int(np.max(np.sum(src_b != PAD, axis=1))), 1)]
        tgt_in, tgt_out = teacher_forcing_pair(tgt[idx])
        yield src_b, tgt_in, tgt_out
