"""Synthetic translation task, batches, the parallel-text loader and the seq2seq training loop."""

import numpy as np
import pytest

from refqt.data.parallel_text import UNK, build_vocabulary, load_parallel_corpus, tokenize
from refqt.data.translation import (
    BOS,
    EOS,
    PAD,
    _make_grammar,
    iterate_translation_batches,
    make_translation_task,
    translate,
)
from refqt.experiments.translation import evaluate_translation, train_epoch_seq2seq
from refqt.fqt import QuantConfig, quantize
from refqt.models import Seq2SeqTransformer
from refqt.optim import Adam


# -- the synthetic task -----------------------------------------------------------------------
def test_task_is_deterministic_in_the_seed():
    a, b = make_translation_task(50, 10, seed=3), make_translation_task(50, 10, seed=3)
    c = make_translation_task(50, 10, seed=4)
    for name in ("src_train", "tgt_train", "src_test", "tgt_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.src_train, c.src_train)


def test_task_layout():
    task = make_translation_task(200, 20, seed=0, min_len=4, max_len=12)
    src_len = np.sum(task.src_train != PAD, axis=1)
    assert src_len.min() >= 4 and src_len.max() <= 12
    assert (
        task.src_train.dtype == np.int64
        and task.src_train.min() >= 0
        and task.src_train.max() < task.src_vocab
    )
    # Every target row: words (ids >= 3), exactly one EOS, then only padding.
    for row in task.tgt_train:
        n = int(np.argmax(row == EOS))
        assert np.all(row[:n] >= 3) and np.all(row[n + 1 :] == PAD) and row.max() < task.tgt_vocab


def test_translation_rules():
    rng = np.random.default_rng(0)
    grammar = _make_grammar((2, 1, 1, 1), rng)  # ids: nouns 3, 4; adjective 5; verb 6; marker 7
    d = {w: int(grammar.dictionary[w - 3]) for w in range(3, 8)}
    tense = int(grammar.tense[6 - 3])
    assert translate([5, 3], grammar, 3) == [d[3], d[5]]  # ADJ NOUN swaps
    assert translate([3, 5], grammar, 3) == [d[3], d[5]]  # NOUN ADJ does not
    assert translate([6, 4], grammar, 3) == [d[6], tense, d[4]]  # verb + tense particle
    assert translate([7, 3, 4, 5, 6], grammar, 3) == [d[7], d[5], d[4], d[3], d[6], tense]  # marked reversal
    assert translate([4, 7, 3], grammar, 3) == [d[4], d[7], d[3]]  # reversal cut at the end


def test_batches_teacher_forcing():
    task = make_translation_task(10, 2, seed=1)
    batches = list(
        iterate_translation_batches(task.src_train, task.tgt_train, 4, rng=np.random.default_rng(0))
    )
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    for src, tgt_in, tgt_out in batches:
        assert tgt_in.shape == tgt_out.shape and tgt_in.dtype == np.int64
        assert np.all(tgt_in[:, 0] == BOS)
        assert np.all(src[:, -1] != PAD) or np.any(src[:, -1] != PAD)  # cut to the longest row
        keep = tgt_out[:, :-1] != PAD
        np.testing.assert_array_equal(
            tgt_in[:, 1:][keep & (tgt_out[:, :-1] != EOS)], tgt_out[:, :-1][keep & (tgt_out[:, :-1] != EOS)]
        )
        assert not np.any(tgt_in == EOS)
    with pytest.raises(ValueError, match="needs rng="):
        next(iterate_translation_batches(task.src_train, task.tgt_train, 4))


# -- parallel text files --------------------------------------------------------------------------
def test_tokenize():
    assert tokenize("Hello, World!  Grüße.") == ["hello", ",", "world", "!", "grüße", "."]


def test_parallel_corpus(tmp_path):
    (tmp_path / "train.de").write_text("Das Haus .\nDas Auto!\n\nein Haus\n", encoding="utf-8")
    (tmp_path / "train.en").write_text("The house.\nThe car!\nempty\na house\n", encoding="utf-8")
    corpus = load_parallel_corpus(tmp_path / "train.de", tmp_path / "train.en", min_count=2)
    assert len(corpus.src) == 3  # the pair with an empty German line is dropped
    assert corpus.src_vocab.tokens == ("<pad>", "<bos>", "<eos>", "<unk>", "das", "haus")
    src, tgt = corpus.arrays(max_len=4)
    np.testing.assert_array_equal(src[1], [4, UNK, UNK, PAD])  # das auto !
    assert corpus.tgt_vocab.decode(tgt[0]) == ["the", "house", "<unk>"]  # "." is seen once
    assert tgt[0, 3] == EOS
    assert build_vocabulary([["b", "a"], ["a"]]).tokens[4:] == ("a", "b")


def test_parallel_corpus_errors(tmp_path):
    (tmp_path / "a.de").write_text("eins\nzwei\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("one\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"no such file .*missing\.en"):
        load_parallel_corpus(tmp_path / "a.de", tmp_path / "missing.en")
    with pytest.raises(ValueError, match=r"has 2 lines but .* has 1"):
        load_parallel_corpus(tmp_path / "a.de", tmp_path / "a.en")


# -- training -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["exact", "fqt"])
def test_tiny_transformer_learns(mode):
    task = make_translation_task(256, 64, seed=0, class_sizes=(4, 2, 2, 1), min_len=3, max_len=5)
    model = Seq2SeqTransformer(
        task.src_vocab,
        task.tgt_vocab,
        d_model=16,
        heads=2,
        layers=1,
        dim_feedforward=32,
        max_len=11,
        rng=np.random.default_rng(0),
    )
    model = quantize(model, QuantConfig(mode=mode, grad_quantizer="psq", grad_bits=8))
    before = evaluate_translation(model, task, decode=False)
    optimizer = Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    for _ in range(6):
        train_epoch_seq2seq(model, optimizer, task, 32, rng)
    after = evaluate_translation(model, task)
    assert after["loss"] < 0.6 * before["loss"]
    assert after["token_accuracy"] > 0.5
    assert 0 <= after["exact_match"] <= 1 and 0 <= after["bleu"] <= 100
