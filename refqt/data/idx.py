"""Read IDX files, the format MNIST ships in (LeCun et al.), plain or gzipped.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then
``ndim`` big-endian uint32 sizes, then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

# The type byte of the magic number -> dtype of the stored values (big-endian).
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in IDX file ``path`` (gunzipped first if it ends in ``.gz``).

    Raises
    ------
    ValueError
        If the magic number is wrong or the payload does not match the sizes
        in the header; the message names the file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}; "
            "expected 0000 then a type byte 08/09/0b/0c/0d/0e and the number of dimensions)"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: IDX header promises {ndim} dimensions but the file ends after {len(raw)} bytes"
        )
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data) "
            f"but the file holds {len(raw) - header} bytes after the header"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))
