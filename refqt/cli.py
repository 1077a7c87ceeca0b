"""The ``refqt`` command line: ``info``, ``demo``, ``train``, ``variance``, ``reproduce``, ``bench``.

Each subcommand is a small module with one function that adds its parser::

    def add_parser(subparsers: argparse._SubParsersAction) -> None:
        parser = subparsers.add_parser("demo", help="...")
        parser.add_argument(...)
        parser.set_defaults(run=run)    # run(args) -> int, the exit status

and :func:`build_parser` calls it, one plain line per subcommand. ``info``
below is written that way; the others live in ``refqt/experiments/``
(``demo``, ``train_cmd``, ``variance_cmd``, ``reproduce``, ``bench_cmd``).
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import refqt
from refqt.backend import available_backends, get_backend
from refqt.experiments import bench_cmd, demo, reproduce, train_cmd, variance_cmd


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _threads(n: object) -> str:
    return "1 thread" if n == 1 else f"{n} threads"


def _blas_line() -> str:
    """The BLAS NumPy calls: library, version, kernel (CPU architecture it picked) and threads.

    The kernel matters: OpenBLAS picks one per CPU (``OPENBLAS_CORETYPE``
    overrides it), and a different kernel sums in a different order, so one
    seed of a training run ends a few digits apart on another machine.
    """
    from threadpoolctl import threadpool_info

    found = [
        f"{i.get('internal_api', '?')} {i.get('version') or '?'}, kernel {i.get('architecture') or '?'}, "
        f"{_threads(i.get('num_threads'))} ({Path(i.get('filepath', '?')).name})"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return "; ".join(found) or "none found by threadpoolctl"


def _gpu_line() -> str:
    """The GPU CuPy would use: name, memory, compute capability, CuPy version -- or that there is none."""
    if "cupy" not in available_backends():
        return "none usable (CuPy not installed, or no working CUDA device)"
    cupy = get_backend("cupy").native
    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    gib = props["totalGlobalMem"] / (1 << 30)
    return (
        f"{name}, {gib:.1f} GiB, compute capability {props['major']}.{props['minor']}, "
        f"device {device.id} (CuPy {cupy.__version__})"
    )


def run_info(args: argparse.Namespace) -> int:
    """Print versions, the BLAS library (kernel, threads) and the backends usable on this machine."""
    usable = available_backends()
    if "cupy" in usable:
        cupy_line = f"{get_backend('cupy').native.__version__} (a GPU works)"
    else:
        cupy_line = "not usable here (CuPy not installed, or no working GPU)"
    lines = [
        f"refqt             {refqt.__version__}",
        f"python            {platform.python_version()} ({sys.executable})",
        f"platform          {platform.platform()}",
        f"numpy             {_version('numpy')}",
        f"blas              {_blas_line()}",
        f"array-api-compat  {_version('array-api-compat')}",
        f"array-api-strict  {_version('array-api-strict')}",
        f"cupy              {cupy_line}",
        f"gpu               {_gpu_line()}",
        f"backends usable   {', '.join(usable)}",
        f"backend 'auto'    {get_backend('auto').name}",
    ]
    print("\n".join(lines))
    return 0


def add_info_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``refqt info``."""
    parser = subparsers.add_parser(
        "info",
        help="versions, BLAS and the backends usable on this machine",
        description=(
            "Print refqt's, Python's and the libraries' versions, the BLAS library with its kernel "
            "and threads, and the backends usable here."
        ),
    )
    parser.set_defaults(run=run_info)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, except where there is none to show (None, or a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.help is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered (each ``--help`` shows the defaults)."""
    parser = argparse.ArgumentParser(
        prog="refqt",
        description="Fully quantized training in plain NumPy (Chen et al., NeurIPS 2020).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"refqt {refqt.__version__}")
    subparsers = parser.add_subparsers(
        title="commands",
        metavar="COMMAND",
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=HelpFormatter),
    )
    add_info_parser(subparsers)
    demo.add_parser(subparsers)
    train_cmd.add_parser(subparsers)
    variance_cmd.add_parser(subparsers)
    reproduce.add_parser(subparsers)
    bench_cmd.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError, KeyError, OSError) as err:
        # A user's mistake (bad bit width, missing data folder, a file where a folder
        # should be, a damaged run file...): one clear line, no traceback.
        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"refqt: error: {text}", file=sys.stderr)
        return 2
