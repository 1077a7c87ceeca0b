# %% [markdown]
# # Per-token gradient quantization in a transformer
#
# In a CNN the gradient quantizer's rows are *samples*. In a transformer every dense
# layer sees an input of shape (N, L, d) -- N sentences of L tokens -- and FQT views
# its output gradient $G$ as an $(N\cdot L) \times d$ matrix: **one row per token**.
# PSQ then gives every token its own range, and BHQ mixes the rows of loud tokens
# with quiet ones before rounding.
#
# Tokens differ far more than samples do. Padding positions get an exactly zero
# gradient; the first decoder position's query gets none either; and the few tokens
# the model is most wrong about carry most of the rest. That is the setting in
# which per-tensor PTQ, whose single step is set by the loudest token, does worst.
#
# We train a small transformer on refqt's synthetic translation task, capture the
# gradients of one batch, and compare PTQ, PSQ and BHQ on them.

# %%
import matplotlib.pyplot as plt
import numpy as np

from refqt import ops
from refqt.data.translation import PAD, iterate_translation_batches, make_translation_task
from refqt.experiments.translation import evaluate_translation, train_epoch_seq2seq
from refqt.fqt import QuantConfig, quantize
from refqt.fqt.layer import gradient_rows
from refqt.models import Seq2SeqTransformer
from refqt.optim import Adam
from refqt.quant import BHQ, PSQ, PTQ
from refqt.stats import capture_gradients, quantization_variance, sampling_variance

task = make_translation_task(n_train=800, n_test=100, seed=0)
print("source ids (padded):", task.src_train[0])
print("target ids (+EOS=2):", task.tgt_train[0])
print(f"vocabularies {task.src_vocab} / {task.tgt_vocab}, widths {task.max_src_len} / {task.max_tgt_len}")

# %% [markdown]
# ## A transformer, trained a little
#
# One encoder and one decoder layer, width 32. Four epochs in float are enough to
# leave chance behind; the gradients we study are those of a model in mid-training.
# (`python -m refqt.experiments.translation --quick` trains it properly in every mode.)

# %%
model = Seq2SeqTransformer(
    task.src_vocab,
    task.tgt_vocab,
    d_model=32,
    heads=4,
    layers=1,
    dim_feedforward=64,
    max_len=max(task.max_src_len, task.max_tgt_len),
    rng=np.random.default_rng(0),
)
before = evaluate_translation(model, task, decode=False)
optimizer = Adam(model.parameters(), lr=5e-3)
shuffle = np.random.default_rng(1)
for epoch in range(4):
    stats = train_epoch_seq2seq(model, optimizer, task, batch_size=32, rng=shuffle)
    print(f"epoch {epoch + 1}: train loss {stats['loss']:.3f}")
after = evaluate_translation(model, task)
print(f"test token accuracy {before['token_accuracy']:.3f} -> {after['token_accuracy']:.3f}")
print(f"test BLEU {after['bleu']:.1f}, exact sentences {after['exact_match']:.2f}")
assert after["token_accuracy"] > 0.35 > 10 * before["token_accuracy"], (
    f"token accuracy {before['token_accuracy']:.3f} -> {after['token_accuracy']:.3f}"
)

# %% [markdown]
# ## Rows are tokens
#
# Switch the model to FQT (4-bit PSQ for now) and capture what each quantized layer's
# backward sees on one test batch. `gradient_rows` is the view the input-path
# quantizer rounds: a dense layer's $G$ of shape (N, L, d) becomes (N·L, d).

# %%
src, tgt_in, tgt_out = next(iterate_translation_batches(task.src_test, task.tgt_test, 32, shuffle=False))
batch = (src, tgt_in, tgt_out)
print("batch: src", src.shape, " tgt_in", tgt_in.shape, " tgt_out", tgt_out.shape)


def loss_fn(model, batch):
    src, tgt_in, tgt_out = batch
    return ops.cross_entropy(model(src, tgt_in), tgt_out, ignore_index=PAD)


quantize(model, QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=4))
with capture_gradients(model) as captured:
    loss_fn(model, batch).backward()

grads = {}  # layer name -> (tokens, features)
for name, records in captured.items():
    g = records[0]["grad"]
    grads[name] = gradient_rows(g, records[0]["kind"])
    assert grads[name].shape[0] == g.shape[0] * g.shape[1]  # one row per token
    assert records[0]["encoded"].codes.shape == grads[name].shape  # PSQ rounded exactly these rows
for name in ("encoder.0.self_attn.q_proj", "decoder.0.self_attn.q_proj", "decoder.0.ff.linear1", "out_proj"):
    print(f"{name:28s} G {captured[name][0]['grad'].shape} -> rows {grads[name].shape}")

# %% [markdown]
# Which rows are zero? A source PAD token is masked out of every attention, so nothing
# downstream depends on it; a target PAD token is left out of the loss
# (`ignore_index`). Their gradient rows are exactly zero in every layer. The decoder's
# self-attention adds one more zero row per sentence: at position 0 the query attends
# to a single key, the softmax weight is 1 whatever the query, and so the query's
# gradient vanishes.

# %%
src_pad, tgt_pad = (src == PAD).reshape(-1), (tgt_out == PAD).reshape(-1)
zero_rows = {name: ~np.any(g != 0, axis=1) for name, g in grads.items()}
print(f"source pads {src_pad.sum()} of {src_pad.size} tokens, target pads {tgt_pad.sum()} of {tgt_pad.size}")
for name in ("encoder.0.ff.linear1", "out_proj", "decoder.0.self_attn.q_proj"):
    print(f"{name:28s} zero rows: {zero_rows[name].sum()}")
assert np.array_equal(zero_rows["encoder.0.ff.linear1"], src_pad)
assert np.array_equal(zero_rows["out_proj"], tgt_pad)
first_position = (np.arange(tgt_pad.size) % tgt_out.shape[1]) == 0
assert np.array_equal(zero_rows["decoder.0.self_attn.q_proj"], tgt_pad | first_position)

# %% [markdown]
# The norms of the remaining rows spread over an order of magnitude: a few tokens
# speak much louder than the rest. Here are the token norms of two layers, one
# sentence per row of the picture (padding blank):

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for ax, name, shape in (
    (axes[0], "encoder.0.self_attn.out_proj", src.shape),
    (axes[1], "out_proj", tgt_out.shape),
):
    norms = np.linalg.norm(grads[name], axis=1).reshape(shape)
    image = ax.imshow(np.ma.masked_equal(norms, 0.0), aspect="auto", cmap="viridis")
    ax.set(title=f"{name}: ‖G row‖ per token", xlabel="position", ylabel="sentence")
    fig.colorbar(image, ax=ax)
fig.tight_layout()
fig.savefig("token_gradient_norms.png", dpi=80)

spread = {}
for name, g in grads.items():
    norms = np.linalg.norm(g, axis=1)
    spread[name] = norms.max() / np.median(norms[norms > 0])
for name in ("encoder.0.self_attn.out_proj", "decoder.0.ff.linear1", "out_proj"):
    print(f"{name:28s} largest token norm / median token norm = {spread[name]:.1f}")
assert min(spread.values()) > 1.2 and np.median(list(spread.values())) > 3, f"spreads: {spread}"

# %% [markdown]
# ![Gradient norm of each token](token_gradient_norms.png)
#
# ## The three quantizers on the same rows
#
# For each layer's captured $G$ we compute the exact conditional variance
# $\mathbb E\lVert Q(G) - G\rVert^2$ of 4-bit PTQ, PSQ and BHQ (closed form, no
# sampling, as in tutorial 4).

# %%
bits = 4
quantizers = {"PTQ": PTQ(bits), "PSQ": PSQ(bits), "BHQ": BHQ(bits)}
layer_variance = {
    name: {k: q.conditional_variance(g) for k, q in quantizers.items()} for name, g in grads.items()
}
print(f"{'layer':30s} {'PTQ':>9} {'PSQ':>9} {'BHQ':>9}  PTQ/PSQ  PSQ/BHQ")
for name, v in layer_variance.items():
    print(
        f"{name:30s} {v['PTQ']:9.2e} {v['PSQ']:9.2e} {v['BHQ']:9.2e}  "
        f"{v['PTQ'] / v['PSQ']:7.1f}  {v['PSQ'] / v['BHQ']:7.1f}"
    )
for name, v in layer_variance.items():
    assert v["BHQ"] < v["PSQ"] < v["PTQ"], f"{name}: {v}"
ratios = np.array([v["PTQ"] / v["PSQ"] for v in layer_variance.values()])
assert np.median(ratios) > 5, f"PSQ / BHQ ratios: {ratios}"

fig, ax = plt.subplots(figsize=(11, 3.6))
x = np.arange(len(layer_variance))
for i, label in enumerate(quantizers):
    ax.bar(x + (i - 1) * 0.27, [v[label] for v in layer_variance.values()], width=0.27, label=label)
ax.set_yscale("log")
ax.set_xticks(x, [n.replace("self_attn", "self").replace("cross_attn", "cross") for n in layer_variance])
ax.tick_params(axis="x", labelrotation=70, labelsize=8)
ax.set(ylabel="E‖Q(G) − G‖², 4 bits")
ax.legend()
fig.tight_layout()
fig.savefig("layer_variance.png", dpi=80)

# %% [markdown]
# ![Variance of each layer's gradient quantizer](layer_variance.png)
#
# BHQ < PSQ < PTQ in every layer, PTQ usually by more than 5× -- except at the
# output projection, whose rows (softmax minus one-hot, per token) are all of a
# similar size.
#
# ## Per token: who pays for PTQ's single step?
#
# `elementwise_variance` gives the variance of every entry; summed over a row it is
# one token's noise. Relative to the token's own squared norm, PTQ drowns the quiet
# tokens: its step is set by the loudest token in the batch. PSQ's noise is
# proportional to each token's own range.

# %%
name = "encoder.0.self_attn.out_proj"
g = grads[name]
keep = np.any(g != 0, axis=1)
norm2 = np.sum(g[keep].astype(np.float64) ** 2, axis=1)
relative = {k: np.sum(q.elementwise_variance(g), axis=1)[keep] / norm2 for k, q in quantizers.items()}
for k, r in relative.items():
    print(f"{k}: token noise / token ‖g‖², median {np.median(r):.3f}, max {r.max():.3f}")
assert np.median(relative["PTQ"]) > 5 * np.median(relative["PSQ"]), (
    f"medians PTQ {np.median(relative['PTQ']):.3g}, PSQ {np.median(relative['PSQ']):.3g}"
)
assert relative["PTQ"].max() > 10 * relative["PSQ"].max(), (
    f"max PTQ {relative['PTQ'].max():.3g}, PSQ {relative['PSQ'].max():.3g}"
)

fig, ax = plt.subplots(figsize=(5, 3.6))
for k, r in relative.items():
    ax.loglog(np.sqrt(norm2), r, ".", label=k, alpha=0.6)
ax.set(xlabel="token ‖g‖", ylabel="noise / ‖g‖²", title=name)
ax.legend()
fig.tight_layout()
fig.savefig("token_relative_noise.png", dpi=80)

# %% [markdown]
# ![Relative noise of each token](token_relative_noise.png)
#
# PTQ's noise on a median token is about as large as the token's gradient itself.
# BHQ is not better token by token: it lends part of a loud token's range to the
# quiet tokens of its group (its worst token is noisier than PSQ's), and that is how
# it lowers the total.
#
# ## What the parameters see
#
# The layer variances add up (Eq. 7) to the variance of the parameter gradient.
# `quantization_variance` measures it directly: FQT gradients of the batch, drawn
# 8 times with fresh noise, against the QAT gradient of the same batch. The weight
# path $Q_w$ follows the authors (8-bit, per tensor with PTQ, per column otherwise).
# Compared with the sampling variance (QAT gradients across batches), PTQ's noise is
# a noticeable fraction of SGD's own; PSQ and BHQ almost vanish beside it.

# %%
train_batches = list(
    iterate_translation_batches(task.src_train[:256], task.tgt_train[:256], 32, shuffle=False)
)
total = {}
for label in quantizers:
    quantize(model, QuantConfig(mode="fqt", grad_quantizer=label.lower(), grad_bits=bits))
    total[label] = quantization_variance(model, loss_fn, [batch], k=8)["total"]
sampling = sampling_variance(model, loss_fn, train_batches)["total"]["variance"]
for label, t in total.items():
    print(
        f"FQT {label} {bits}-bit: quantization variance {t['variance']:.4f} ± {t['stderr']:.4f}"
        f"   / sampling variance {sampling:.3f} = {t['variance'] / sampling:.3f}"
    )
assert total["PTQ"]["variance"] > 3 * total["PSQ"]["variance"] > 3 * 1.5 * total["BHQ"]["variance"], (
    f"totals: { {q: t['variance'] for q, t in total.items()} }"
)
assert total["PSQ"]["variance"] < 0.2 * sampling, (
    f"PSQ {total['PSQ']['variance']:.4g}, sampling {sampling:.4g}"
)
