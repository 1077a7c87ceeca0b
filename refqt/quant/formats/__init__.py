"""Low-precision number formats as refqt quantizers: FP8/FP6/FP4/INT elements, MX and NVFP4 blocks, RHT.

* :mod:`~refqt.quant.formats.elements` -- element formats as value grids, with
  round-to-nearest-even and stochastic rounding (exact or with ``k`` random bits)
  and their exact moments;
* :mod:`~refqt.quant.formats.blocks` -- block layouts (rows, columns, 2D tiles)
  and scale rules (per tensor, MX's E8M0 in three roundings, NVFP4's E4M3 × FP32);
* :mod:`~refqt.quant.formats.hadamard` -- the random Hadamard transform and its sign policies;
* :mod:`~refqt.quant.formats.quantizer` -- all of it as a :class:`~refqt.quant.GradientQuantizer`.

:data:`FORMAT_QUANTIZERS` names the presets :func:`make_format_quantizer` builds
(and the quantizer factory :func:`refqt.quant.make_gradient_quantizer` accepts).
See docs/theory/formats.md.
"""

from __future__ import annotations

from refqt.quant.formats.blocks import block_scales, from_blocks, mx_exponent, to_blocks
from refqt.quant.formats.elements import FORMATS, ElementFormat, element_format
from refqt.quant.formats.hadamard import SIGN_POLICIES, RandomHadamard, sylvester, walsh_hadamard
from refqt.quant.formats.quantizer import BlockFormatQuantizer

_PRESETS = {
    # name: (element, scaling, layout, hadamard?)
    "fp8-e4m3": ("e4m3", "tensor", "row", False),
    "fp8-e5m2": ("e5m2", "tensor", "row", False),
    "mxfp8-e4m3": ("e4m3", "mx", "row", False),
    "mxfp8-e5m2": ("e5m2", "mx", "row", False),
    "mxfp8-e4m3-column": ("e4m3", "mx", "column", False),
    "mxfp6-e3m2": ("e3m2", "mx", "row", False),
    "mxfp6-e2m3": ("e2m3", "mx", "row", False),
    "mxfp4": ("e2m1", "mx", "row", False),
    "mxint8": ("int8", "mx", "row", False),
    "nvfp4": ("e2m1", "nvfp4", "row", False),
    "nvfp4-column": ("e2m1", "nvfp4", "column", False),
    "nvfp4-tile": ("e2m1", "nvfp4", "tile", False),
    "nvfp4-rht": ("e2m1", "nvfp4", "row", True),
    "nvfp4-rht-column": ("e2m1", "nvfp4", "column", True),
}

FORMAT_QUANTIZERS = tuple(_PRESETS)
"""Names of the stochastic-rounding format presets (MX: spec's floor scale; RHT: d = 16, fixed signs).

:func:`make_format_quantizer` also takes them with suffixes: ``-ceil`` or
``-even`` (MX scale rounding), then ``-rtn`` (round to nearest even instead
of stochastic rounding), e.g. ``"mxfp8-e4m3-column-ceil-rtn"``.
"""

SUFFIXES = ("-rtn", "-ceil", "-even")


def _split_name(name: str) -> tuple[str, str, str] | None:
    """``(preset, scale_rounding, rounding)`` of a format name with its suffixes, or None."""
    rounding, scale_rounding = "stochastic", "floor"
    if name.endswith("-rtn"):
        name, rounding = name[: -len("-rtn")], "nearest"
    for mode in ("ceil", "even"):
        if name.endswith(f"-{mode}"):
            name, scale_rounding = name[: -len(mode) - 1], mode
    if name not in _PRESETS or (scale_rounding != "floor" and _PRESETS[name][1] != "mx"):
        return None
    return name, scale_rounding, rounding


def is_format_name(name: str) -> bool:
    """Whether :func:`make_format_quantizer` knows ``name`` (a preset, with optional suffixes)."""
    return isinstance(name, str) and _split_name(name) is not None


def make_format_quantizer(name: str, seed: int = 0, rounding: str | None = None) -> BlockFormatQuantizer:
    """The format ``name`` (a :data:`FORMAT_QUANTIZERS` preset with optional suffixes) as a quantizer.

    ``-column``: blocks along the columns of the (N, D) view (the weight-gradient
    GEMM reduces over them); ``-tile``: 16×16 tiles; ``-rht``: a 16-point random
    Hadamard transform with signs fixed from ``seed``. ``rounding`` overrides
    the name's (``"nearest"`` for the forward quantizers of a recipe).
    """
    parts = _split_name(name)
    if parts is None:
        raise ValueError(
            f"unknown format quantizer {name!r}; expected one of {FORMAT_QUANTIZERS}, "
            "optionally with -ceil/-even (MX only) and -rtn"
        )
    preset, scale_rounding, name_rounding = parts
    element, scaling, layout, rht = _PRESETS[preset]
    hadamard = RandomHadamard(16, "fixed", seed) if rht else None
    return BlockFormatQuantizer(
        element,
        scaling,
        layout=layout,
        scale_rounding=scale_rounding,
        rounding=rounding or name_rounding,
        hadamard=hadamard,
        name=name,
    )


__all__ = [
    "FORMATS",
    "FORMAT_QUANTIZERS",
    "SIGN_POLICIES",
    "SUFFIXES",
    "BlockFormatQuantizer",
    "ElementFormat",
    "RandomHadamard",
    "block_scales",
    "element_format",
    "from_blocks",
    "is_format_name",
    "make_format_quantizer",
    "mx_exponent",
    "sylvester",
    "to_blocks",
    "walsh_hadamard",
]
