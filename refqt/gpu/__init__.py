"""GPU algorithms: a few large kernels per op instead of the CPU's cache-sized loops.

The CPU paths (:mod:`refqt.ops`, :mod:`refqt.quant`) are the readable
definition and what CI runs. On a GPU the same maths is better done as a
handful of big launches: one GEMM over a whole chunk of images, elementwise
chains fused into one kernel, noise drawn on the device. This package holds
those algorithms. Each is written with the ``native`` module (``numpy`` or
``cupy``) and, where a kernel is fused with CuPy's kernel tools, a NumPy
mirror of the same formula; :func:`refqt.backend.device_path` -- the one
dispatch -- sends CuPy arrays here, and NumPy arrays too inside
:func:`refqt.backend.emulate_device`, so a machine without a GPU tests the
maths.
"""
