"""PreActResNet and Seq2SeqTransformer: shapes, gradients (adjoint test in float64), padding masks."""

import numpy as np
import pytest

from refqt.gradcheck import adjoint_test, module_as_function
from refqt.models import PreActResNet, Seq2SeqTransformer
from refqt.models.resnet import PreActBlock
from refqt.tensor import Tensor

F64 = np.float64


# -- PreActResNet ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("channels", "side"), [(1, 8), (1, 28), (3, 32)])
def test_preact_resnet_shapes(backend, rng, channels, side):
    model = PreActResNet(width=4, in_channels=channels, classes=7, rng=rng).to(backend)
    x = backend.asarray(rng.standard_normal((2, channels, side, side)).astype(np.float32))
    assert model(Tensor(x)).shape == (2, 7)
    model.eval()
    assert model(Tensor(x)).shape == (2, 7)


def test_preact_resnet_depth_sets_blocks_per_stage(rng):
    blocks = [
        m for _, m in PreActResNet(depth=14, width=2, rng=rng).named_modules() if isinstance(m, PreActBlock)
    ]
    assert len(blocks) == 6
    assert [b.shortcut is None for b in blocks] == [True, True, False, True, False, True]
    with pytest.raises(ValueError, match="PreActResNet: depth must be 6n \\+ 2"):
        PreActResNet(depth=10, rng=rng)


@pytest.mark.parametrize("stride", [1, 2])
def test_preact_block_gradients(backend, rng, stride):
    block = PreActBlock(2, 3, stride, rng=rng, dtype=F64).to(backend)
    fn, params = module_as_function(block, 1)
    x = backend.asarray(rng.standard_normal((2, 2, 4, 4)))
    adjoint_test(fn, [x, *params], rng)


# -- Seq2SeqTransformer -------------------------------------------------------------------------
def tiny_transformer(rng, dtype=F64):
    return Seq2SeqTransformer(
        9, 11, d_model=8, heads=2, layers=1, dim_feedforward=12, max_len=8, rng=rng, dtype=dtype
    )


SRC = np.array([[4, 5, 6, 0], [7, 3, 0, 0]])
TGT_IN = np.array([[1, 5, 9, 4, 0], [1, 10, 0, 0, 0]])


def test_transformer_shapes(backend, rng):
    model = tiny_transformer(rng, np.float32).to(backend)
    assert model(SRC, TGT_IN).shape == (2, 5, 11)
    with pytest.raises(ValueError, match="exceeds max_len 8"):
        model(np.ones((1, 9), dtype=np.int64), TGT_IN[:1])


def test_transformer_gradients(backend, rng):
    model = tiny_transformer(rng).to(backend)
    fn, params = module_as_function(model, 0, src=SRC, tgt_in=TGT_IN)
    adjoint_test(fn, params, rng)


def test_padding_does_not_change_outputs(rng):
    model = tiny_transformer(rng)
    logits = model(SRC, TGT_IN).numpy()
    # More padding on both sides: the real positions' logits are unchanged.
    wider = model(np.pad(SRC, ((0, 0), (0, 3))), np.pad(TGT_IN, ((0, 0), (0, 2)))).numpy()
    np.testing.assert_allclose(wider[:, :5], logits, rtol=1e-10, atol=1e-12)
    # Each sentence alone (trimmed) gives the same logits as in the padded batch.
    alone = model(SRC[1:, :2], TGT_IN[1:, :2]).numpy()
    np.testing.assert_allclose(alone[0], logits[1, :2], rtol=1e-10, atol=1e-12)
    # Causal: changing a later target token leaves earlier positions alone.
    changed = TGT_IN.copy()
    changed[0, 3] = 7
    np.testing.assert_allclose(model(SRC, changed).numpy()[0, :3], logits[0, :3], rtol=1e-10, atol=1e-12)


def test_greedy_decode_agrees_with_forward(rng):
    model = tiny_transformer(rng)
    out = model.greedy_decode(SRC, max_len=6, bos=1, eos=2)
    assert out.dtype == np.int64 and out.shape[0] == 2 and out.shape[1] <= 6
    # Feeding the decoded prefix back, each step's argmax is the next decoded token.
    row = out[0]
    n = int(np.argmax(row == 2)) + 1 if np.any(row == 2) else len(row)  # tokens up to and with EOS
    prefix = np.concatenate([[1], row[: n - 1]])[None, :]
    logits = model(SRC[:1], prefix).numpy()[0]
    np.testing.assert_array_equal(np.argmax(logits, axis=-1), row[:n])
    assert model.training
