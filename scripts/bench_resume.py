"""How much a resumed ``refqt reproduce`` saves: a whole run, then one killed mid-way and resumed.

::

    python scripts/bench_resume.py [--quick | --tiny] [--seeds N] [--jobs N] [--kill-at 0.9]

Runs the suite once uninterrupted, then again in another folder, sends
SIGKILL once ``--kill-at`` of the digits runs are in ``results.json``, and
calls it a second time. Prints the three wall times, the ratio of the resumed
call to the whole run, and whether every number (wall times aside, and the
overhead part, which is a timing) is the same in both folders.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from refqt.experiments import reproduce as rp


def command(out: Path, args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "refqt", "reproduce", "--out", str(out), "--jobs", str(args.jobs)]
    argv += ["--quick"] if args.quick else ["--tiny"] if args.tiny else []
    return argv + (["--seeds", str(args.seeds)] if args.seeds else [])


def finished_digits(out: Path) -> int:
    try:
        results = json.loads((out / "results.json").read_text())
    except FileNotFoundError:
        return 0
    return sum('"kind": "RunSpec"' in e["key"] for e in results.get("finished_runs", []))


def without_times(value):
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if not k.endswith("seconds") and k != "total"}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=0.9, help="fraction of the digits runs")
    args = parser.parse_args()
    suite = rp.QUICK if args.quick else rp.TINY if args.tiny else rp.FULL
    n_digits = len(rp.digits_specs(suite, args.seeds or suite.seeds))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        whole, killed = Path(tmp) / "whole", Path(tmp) / "killed"
        start = time.perf_counter()
        subprocess.run(command(whole, args), env=env, check=True, capture_output=True)
        whole_s = time.perf_counter() - start

        start = time.perf_counter()
        proc = subprocess.Popen(command(killed, args), env=env, stdout=subprocess.DEVNULL)
        while proc.poll() is None and finished_digits(killed) < args.kill_at * n_digits:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_s = time.perf_counter() - start
        done = finished_digits(killed)

        start = time.perf_counter()
        subprocess.run(command(killed, args), env=env, check=True, capture_output=True)
        resumed_s = time.perf_counter() - start

        a = json.loads((whole / "results.json").read_text())["parts"]
        b = json.loads((killed / "results.json").read_text())["parts"]
        same = all(without_times(a[p]) == without_times(b[p]) for p in a if p != "overhead")
    print(f"suite {suite.name}, --jobs {args.jobs}: {n_digits} digits runs")
    print(f"whole run                    {whole_s:6.1f} s")
    print(f"killed after {done:3d} digits runs {killed_s:6.1f} s")
    print(f"second call (resumed)        {resumed_s:6.1f} s  = {resumed_s / whole_s:.2f} of the whole run")
    print(f"same numbers as the whole run: {same}")


if __name__ == "__main__":
    main()
