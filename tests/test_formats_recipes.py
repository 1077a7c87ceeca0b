"""Recipes (NVFP4, MXFP8) as QuantConfig presets, and the Theorem 1 audit of their gradient paths.

The audit tests run at an overall false-alarm rate of 1e-6 (Bonferroni, refqt.stats.recipe_audit),
seeded; the biased recipes show that the test has power, the unbiased ones that it does not
cry wolf.
"""

import numpy as np
import pytest

from refqt.data import load_digits
from refqt.experiments.training import classification_loss
from refqt.fqt import QuantConfig, quantize
from refqt.fqt.config import RECIPES, recipe
from refqt.models import MLP, SmallCNN
from refqt.quant.formats import make_format_quantizer
from refqt.stats.recipe_audit import format_audit, path_draws, recipe_audit

X, Y = load_digits()
BATCH = (X[:64].astype(np.float32), Y[:64])


def _mlp(config):
    return quantize(MLP(hidden=64, rng=np.random.default_rng(0), dtype=np.float32), config)


def _audit(config):
    return recipe_audit(_mlp(config), classification_loss, BATCH, np.random.default_rng(2), k=48)


def test_recipes_are_configs_and_names_are_checked():
    for name in RECIPES:
        assert recipe(name).mode == "fqt"
    assert recipe("nvfp4", seed=3).seed == 3
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("fp2")
    with pytest.raises(ValueError, match="act_format"):
        QuantConfig(act_format="nvfp5")
    with pytest.raises(ValueError, match="grad_quantizer"):
        QuantConfig(grad_quantizer="nvfp4-ceil")  # -ceil is an MX scale rounding
    assert QuantConfig(mode="fqt", grad_quantizer="mxfp4").resolved_weight_grad_quantizer == "mxfp4"


def test_recipe_forward_rounds_operands_to_the_format():
    model = _mlp(recipe("nvfp4", mode="qat"))
    layer = model.net[1]
    w = layer.weight.data
    _, wq = layer.fqt._operands(layer.weight, layer.weight)
    tiles = make_format_quantizer("nvfp4-tile", rounding="nearest")
    np.testing.assert_array_equal(wq.data, tiles.quantize(w, 0 * w))
    assert np.unique(np.abs(wq.data)).size <= 8 * (w.size // 256 + 1)  # FP4 values × one scale per tile
    assert np.isfinite(float(classification_loss(model, BATCH).data))


def test_with_quantizers_off_a_recipe_gives_the_qat_gradient():
    qat, _ = path_draws(_mlp(recipe("nvfp4", seed=1)), classification_loss, BATCH, 2, "weight")
    model = _mlp(recipe("nvfp4", mode="qat"))
    model.zero_grad()
    classification_loss(model, BATCH).backward()
    for name, g in qat.items():
        layer = dict(model.named_modules())[name]
        ref = np.concatenate([layer.weight.grad.ravel(), layer.bias.grad.ravel()])
        np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-9)


def test_audit_accepts_psq_and_nvfp4_without_requantization():
    for config in (
        QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=4, seed=1),
        recipe("nvfp4", seed=1, wgrad_act_format="forward"),
    ):
        audit = _audit(config)
        rejected = audit["paths"]["input"]["rejected"] or audit["paths"]["weight"]["rejected"]
        assert not rejected, format_audit(audit)


def test_audit_finds_the_nvfp4_weight_path_biased_and_its_input_path_not():
    audit = _audit(recipe("nvfp4", seed=1))
    assert audit["paths"]["weight"]["rejected"]
    assert not audit["paths"]["input"]["rejected"]
    for v in audit["paths"]["weight"]["layers"].values():
        assert v["relative_bias"] > 3 * v["relative_noise"]


def test_audit_finds_both_mxfp8_paths_biased():
    audit = _audit(recipe("mxfp8", seed=1))
    assert audit["paths"]["weight"]["rejected"] and audit["paths"]["input"]["rejected"]
    assert "BIASED" in format_audit(audit)


def test_recipe_runs_on_a_conv_model():
    model = quantize(SmallCNN(rng=np.random.default_rng(0), dtype=np.float32), recipe("nvfp4", seed=0))
    model.zero_grad()
    classification_loss(model, (BATCH[0][:8], BATCH[1][:8])).backward()
    assert all(np.all(np.isfinite(p.grad)) for p in model.parameters())


def test_variance_command_has_format_rows(tmp_path, capsys):
    from refqt.cli import main

    args = ["variance", "--epochs", "1", "--bits", "4", "--limit", "96", "--batches", "2", "--draws", "2"]
    assert main([*args, "--formats", "nvfp4,mxfp8-e4m3", "--out", str(tmp_path)]) == 0
    import json

    rows = json.loads((tmp_path / "variance.json").read_text())["formats"]
    assert rows["nvfp4"]["variance"] > 3 * rows["mxfp8-e4m3"]["variance"] > 0  # 1 vs 3 mantissa bits: 8x seen
    assert "nvfp4 var" in capsys.readouterr().out
    assert main([*args, "--formats", "fp3", "--out", str(tmp_path)]) == 2
