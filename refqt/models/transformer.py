"""``Seq2SeqTransformer``: an encoder-decoder transformer for translation (Vaswani et al., 2017).

    src ids (N, Ls) ─ embed + positions ─ encoder layers ─ LN ─────────────┐ memory
    tgt_in ids (N, Lt) ─ embed + positions ─ decoder layers (causal) ─ LN ─┴─ Linear → logits (N, Lt, V)

The blocks are refqt.nn's :class:`~refqt.nn.TransformerEncoderLayer` and
:class:`~refqt.nn.TransformerDecoderLayer`, pre-LN by default
(``norm_first=False``: post-LN, as in the paper's fairseq model, and then no
final LN -- each block already ends with one), so every projection is a
:class:`~refqt.nn.Linear` that :func:`refqt.fqt.quantize` hooks; its rows are
tokens, so FQT quantizes one row per token. Padding (id 0) is masked out of
every attention, so pad tokens never change the other positions' outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.autodiff import no_grad
from refqt.backend import backend_of
from refqt.nn import (
    Embedding,
    LayerNorm,
    Linear,
    Module,
    ModuleList,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)
from refqt.tensor import Tensor

PAD = 0


def sinusoidal_positions(max_len: int, d_model: int) -> np.ndarray:
    """Vaswani's table P (max_len, d_model): P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(·)."""
    t = np.arange(max_len)[:, None]
    freq = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(t * freq)
    table[:, 1::2] = np.cos(t * freq)[:, : d_model // 2]
    return table


def _host(ids: Any) -> np.ndarray:
    return ids if isinstance(ids, np.ndarray) else backend_of(ids).to_numpy(ids)


class Seq2SeqTransformer(Module):
    """Encoder-decoder transformer over token ids, PAD = 0.

    Embeddings start ``N(0, 1)``, the scale of the sinusoidal positions they
    are added to (what Vaswani's ``√d · N(0, 1/d)`` gives).

    Parameters
    ----------
    src_vocab, tgt_vocab : int
        Vocabulary sizes (ids in ``[0, vocab)``).
    d_model, heads, layers, dim_feedforward : int
        Width, attention heads, encoder layers (= decoder layers), feed-forward width.
    max_len : int
        Longest sequence the position table covers.
    dropout : float
        Dropout inside the blocks (needs ``dropout_rng`` when > 0).
    norm_first : bool
        True: pre-LN blocks and a final LN after each stack; False: post-LN
        blocks (Vaswani's and fairseq's) and no final LN.
    rng : numpy.random.Generator
        Initial weights.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        dim_feedforward: int = 128,
        max_len: int = 64,
        dropout: float = 0.0,
        norm_first: bool = True,
        *,
        rng: np.random.Generator,
        dropout_rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ):
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.src_embed = Embedding(src_vocab, d_model, rng=rng, dtype=dtype)
        self.tgt_embed = Embedding(tgt_vocab, d_model, rng=rng, dtype=dtype)
        self.register_buffer("positions", sinusoidal_positions(max_len, d_model).astype(dtype))
        self.norm_first = norm_first
        block = {
            "dropout": dropout,
            "rng": rng,
            "dropout_rng": dropout_rng,
            "dtype": dtype,
            "norm_first": norm_first,
        }
        self.encoder = ModuleList(
            [TransformerEncoderLayer(d_model, heads, dim_feedforward, **block) for _ in range(layers)]
        )
        self.decoder = ModuleList(
            [TransformerDecoderLayer(d_model, heads, dim_feedforward, **block) for _ in range(layers)]
        )
        self.encoder_norm = LayerNorm(d_model, dtype=dtype) if norm_first else None
        self.decoder_norm = LayerNorm(d_model, dtype=dtype) if norm_first else None
        self.out_proj = Linear(d_model, tgt_vocab, rng=rng, dtype=dtype)

    def _embed(self, embedding: Embedding, ids: Any) -> Tensor:
        length = ids.shape[1]
        if length > self.max_len:
            raise ValueError(
                f"Seq2SeqTransformer: sequence of length {length} exceeds max_len {self.max_len}"
            )
        return embedding(ids) + Tensor(self.positions[:length, :])

    def encode(self, src: Any) -> tuple[Tensor, Any]:
        """src ids (N, Ls) -> memory (N, Ls, d_model) and its padding mask (N, Ls), True = PAD."""
        src_pad = src == PAD
        x = self._embed(self.src_embed, src)
        for layer in self.encoder:
            x = layer(x, key_padding_mask=src_pad)
        return (x if self.encoder_norm is None else self.encoder_norm(x)), src_pad

    def decode(self, tgt_in: Any, memory: Tensor, src_pad: Any) -> Tensor:
        """tgt_in ids (N, Lt), memory (N, Ls, d_model) -> logits (N, Lt, tgt_vocab)."""
        tgt_pad = tgt_in == PAD
        y = self._embed(self.tgt_embed, tgt_in)
        for layer in self.decoder:
            y = layer(y, memory, causal=True, key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad)
        return self.out_proj(y if self.decoder_norm is None else self.decoder_norm(y))

    def forward(self, src: Any, tgt_in: Any) -> Tensor:
        """src (N, Ls), tgt_in (N, Lt) int ids -> logits (N, Lt, tgt_vocab) for the next target token."""
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)

    def greedy_decode(self, src: Any, max_len: int, bos: int = 1, eos: int = 2) -> np.ndarray:
        """Most likely next token, one step at a time, from ``bos`` (no gradients).

        Returns host int64 ids (N, ≤ max_len) without the BOS: each row stops
        with ``eos`` (then PAD) or at ``max_len`` tokens. Every step re-runs
        the decoder on the whole prefix: simple, quadratic, fine for short
        sentences.
        """
        was_training = self.training
        self.eval()
        n = src.shape[0]
        out = np.full((n, 1), bos, dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        with no_grad():
            memory, src_pad = self.encode(src)
            for _ in range(max_len):
                logits = self.decode(out, memory, src_pad)
                step = np.argmax(logits.numpy()[:, -1, :], axis=-1).astype(np.int64)
                step = np.where(done, PAD, step)
                out = np.concatenate([out, step[:, None]], axis=1)
                done |= step == eos
                if done.all():
                    break
        self.train(was_training)
        return out[:, 1:]

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, norm_first={self.norm_first}"
