"""The transformer study's knobs (Zipf words, post-LN) and its regime probe, on tiny sizes."""

import numpy as np
import pytest

from refqt.data.translation import FIRST_WORD, make_translation_task
from refqt.experiments.transformer_regime import format_regime, range_spread, regime_probe
from refqt.experiments.translation import build_translation
from refqt.fqt import QuantConfig, quantize
from refqt.models import Seq2SeqTransformer


def test_zipf_words_make_rare_words():
    """Zipf(1.2) over 16 nouns: noun 1 drawn ~28× as often as noun 16; uniform by default.

    Counts over ~9,600 noun draws: the 10× margin is more than 10 standard errors
    from both the Zipf ratio and 1.
    """

    def noun_counts(**kw):
        src = make_translation_task(n_train=3000, n_test=1, seed=0, **kw).src_train
        return np.bincount(src[src >= FIRST_WORD] - FIRST_WORD, minlength=16)[:16]

    zipf, flat = noun_counts(zipf=1.2), noun_counts()
    assert zipf[0] > 10 * zipf[15]
    assert flat.max() < 1.3 * flat.min()
    with pytest.raises(ValueError, match="zipf"):
        make_translation_task(zipf=-1.0)


def test_post_ln_model_has_no_final_norm_and_trains():
    task = make_translation_task(n_train=8, n_test=1, seed=0)
    kw = {"d_model": 16, "heads": 2, "layers": 2, "dim_feedforward": 32, "max_len": 32}
    post = Seq2SeqTransformer(
        task.src_vocab, task.tgt_vocab, norm_first=False, rng=np.random.default_rng(0), **kw
    )
    pre = Seq2SeqTransformer(task.src_vocab, task.tgt_vocab, rng=np.random.default_rng(0), **kw)
    assert not any(k.startswith(("encoder_norm", "decoder_norm")) for k in post.state_dict())
    assert any(k.startswith("encoder_norm") for k in pre.state_dict())
    assert all(not layer.norm_first for layer in post.encoder)
    logits = post(task.src_train[:4], task.tgt_train[:4, :5])
    assert logits.shape == (4, 5, task.tgt_vocab)
    logits.sum().backward()
    assert all(p.grad is not None for p in post.parameters())


def test_range_spread_is_max_over_median_of_nonzero_rows():
    g = np.zeros((2, 3, 4))
    for i, r in enumerate([1.0, 2.0, 3.0, 100.0]):
        g.reshape(-1, 4)[i, :2] = [0.0, r]
    assert range_spread(g) == pytest.approx(100.0 / 2.5)  # two all-zero rows (padding) left out


def test_regime_probe_reports_every_layer_and_setting():
    shape = {"n_train": 64, "d_model": 16, "dim_feedforward": 16, "layers": 1, "heads": 2, "n_test": 4}
    task, model = build_translation(**shape)
    quantize(model, QuantConfig(mode="qat"))
    probe = regime_probe(model.state_dict(), shape, task, bits=(4,), sampling_batches=2, draws=2)
    assert set(probe["ratio"]) == {"ptq 4", "psq 4", "bhq 4"}
    assert "out_proj" in probe["layers"] and all(probe["spread"][k] >= 1 for k in probe["layers"])
    assert all(v > 0 for cells in probe["ratio"].values() for v in cells.values())
    text = "\n".join(format_regime({"probes": [{"epoch": 1, **probe}]}))
    assert "| out_proj |" in text and "q/s PTQ 4" in text
