"""Export scikit-learn's copy of the UCI handwritten digits into refqt/data/digits.npz.

Run once, by a maintainer, to (re)make the bundled file; refqt itself never
imports scikit-learn::

    pip install scikit-learn
    python scripts/export_digits.py

The file holds two arrays:

* ``images`` -- uint8 (1797, 8, 8), pixel counts 0..16 exactly as in the UCI file;
* ``labels`` -- uint8 (1797,), the digit 0..9.

Source: the test set (``optdigits.tes``) of the UCI "Optical Recognition of
Handwritten Digits" data set, E. Alpaydin and C. Kaynak, 1998, as shipped with
scikit-learn (``sklearn.datasets.load_digits``). See refqt/data/README.md for
the licence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parents[1] / "refqt" / "data" / "digits.npz"


def main() -> None:
    digits = load_digits()
    pixels = digits.images
    if not (np.all(pixels == np.round(pixels)) and pixels.min() >= 0 and pixels.max() <= 16):
        raise ValueError("expected integer pixel counts in 0..16 from sklearn's digits")
    images = pixels.astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    np.savez_compressed(OUT, images=images, labels=labels)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): images {images.shape}, labels {labels.shape}")


if __name__ == "__main__":
    main()
