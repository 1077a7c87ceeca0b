"""Parallel corpora from local text files: tokenize, build vocabularies, turn sentences into ids.

The usual layout (IWSLT14 De-En after the standard preparation, for one)
is one sentence per line in two aligned files, ``train.de`` and ``train.en``:
line i of one translates line i of the other. Nothing is downloaded; point
:func:`load_parallel_corpus` at the files.

Ids follow :mod:`refqt.data.translation`: ``PAD = 0``, ``BOS = 1``,
``EOS = 2``, ``UNK = 3``, words from 4 in order of falling frequency.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(line: str) -> list[str]:
    """Lowercase, then split into words and single punctuation marks.

    ``"Hello, world!"`` -> ``["hello", ",", "world", "!"]``. Letters with
    accents or umlauts count as word characters.
    """
    return _TOKEN.findall(line.lower())


@dataclass(frozen=True)
class Vocabulary:
    """A token <-> id mapping with the four special ids first.

    Attributes
    ----------
    tokens : tuple of str
        ``tokens[i]`` is the token of id i; ids 0-3 are ``<pad> <bos> <eos> <unk>``.
    index : dict
        token -> id, derived from ``tokens``.
    """

    tokens: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A frozen dataclass sets its derived fields through object.__setattr__.
        object.__setattr__(self, "index", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        """Id of ``token``, ``UNK`` if unknown."""
        return self.index.get(token, UNK)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.id(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``, stopping at EOS and skipping PAD / BOS."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.tokens[i])
        return out


def build_vocabulary(
    sentences: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None
) -> Vocabulary:
    """Vocabulary of the tokens seen at least ``min_count`` times, most frequent first.

    Ties are broken alphabetically so the result does not depend on input
    order. ``max_size`` caps the total size, specials included.
    """
    if min_count < 1:
        raise ValueError(f"build_vocabulary: min_count must be >= 1, got {min_count}")
    counts = Counter(t for s in sentences for t in s)
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    if max_size is not None:
        kept = kept[: max(max_size - len(SPECIALS), 0)]
    return Vocabulary(SPECIALS + tuple(kept))


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file without their newlines; a clear error if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"parallel_text: no such file {str(path)!r}")
    return path.read_text(encoding="utf-8").splitlines()


def encode_sentences(
    sentences: Sequence[Sequence[str]], vocab: Vocabulary, add_eos: bool, max_len: int
) -> np.ndarray:
    """Padded int64 ids (N, max_len): tokens (cut to fit), then EOS if ``add_eos``, then PAD."""
    out = np.full((len(sentences), max_len), PAD, dtype=np.int64)
    room = max_len - 1 if add_eos else max_len
    for row, tokens in enumerate(sentences):
        ids = vocab.encode(tokens[:room]) + ([EOS] if add_eos else [])
        out[row, : len(ids)] = ids
    return out


@dataclass(frozen=True)
class ParallelCorpus:
    """Tokenized sentence pairs and their vocabularies."""

    src: list[list[str]]
    tgt: list[list[str]]
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary

    def arrays(self, max_len: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids: src (N, max_len), tgt + EOS (N, max_len), as :mod:`refqt.data.translation`."""
        return (
            encode_sentences(self.src, self.src_vocab, add_eos=False, max_len=max_len),
            encode_sentences(self.tgt, self.tgt_vocab, add_eos=True, max_len=max_len),
        )


def load_parallel_corpus(
    src_path: str | Path,
    tgt_path: str | Path,
    min_count: int = 1,
    max_size: int | None = None,
    src_vocab: Vocabulary | None = None,
    tgt_vocab: Vocabulary | None = None,
    skip_empty: bool = True,
) -> ParallelCorpus:
    """Read two aligned one-sentence-per-line files, tokenize, and build (or reuse) vocabularies.

    Parameters
    ----------
    src_path, tgt_path : path
        E.g. ``iwslt14/train.de`` and ``iwslt14/train.en``.
    min_count, max_size :
        Passed to :func:`build_vocabulary` when a vocabulary is built.
    src_vocab, tgt_vocab : Vocabulary, optional
        Reuse the training vocabularies (for the validation and test files).
    skip_empty : bool
        Drop pairs where either side has no tokens.

    Raises
    ------
    FileNotFoundError
        If either file is missing.
    ValueError
        If the files have different numbers of lines.
    """
    src_lines, tgt_lines = read_lines(src_path), read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise ValueError(
            f"load_parallel_corpus: {str(src_path)!r} has {len(src_lines)} lines but {str(tgt_path)!r} has "
            f"{len(tgt_lines)}; the files must be aligned line by line"
        )
    pairs = [(tokenize(s), tokenize(t)) for s, t in zip(src_lines, tgt_lines, strict=True)]
    if skip_empty:
        pairs = [(s, t) for s, t in pairs if s and t]
    src = [s for s, _ in pairs]
    tgt = [t for _, t in pairs]
    return ParallelCorpus(
        src,
        tgt,
        src_vocab if src_vocab is not None else build_vocabulary(src, min_count, max_size),
        tgt_vocab if tgt_vocab is not None else build_vocabulary(tgt, min_count, max_size),
    )
