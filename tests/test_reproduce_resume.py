"""``refqt reproduce`` resumes: killed (SIGKILL) mid-way, a second call redoes nothing finished."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from refqt.cli import main
from refqt.experiments import reproduce as rp
from refqt.experiments.runspec import RunSpec

pytestmark = pytest.mark.slow

SEEDS = 6  # the tiny suite with more seeds: enough runs that a kill lands mid-way (~10 s on 2 cores)


def _command(out):
    argv = [sys.executable, "-m", "refqt", "reproduce", "--tiny", "--seeds", str(SEEDS), "--jobs", "1"]
    return [*argv, "--out", str(out)]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"}


def _results(out):
    try:
        return json.loads((out / "results.json").read_text())
    except FileNotFoundError:
        return None


def _kill_when(out, log, ready):
    """Start a reproduction into ``out``; SIGKILL it as soon as ``ready(results)`` holds."""
    with open(log, "w") as f:
        proc = subprocess.Popen(_command(out), env=_env(), stdout=f, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            results = _results(out)  # written atomically: always whole when it exists
            if results is not None and ready(results):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return results
            time.sleep(0.02)
    pytest.fail(f"the reproduction finished before it could be killed: {log.read_text()[-500:]}")


def _digits_runs(results):
    return sum('"kind": "RunSpec"' in e["key"] for e in results["finished_runs"])


def _translation_runs(results):
    return sum('"kind": "TranslationSpec"' in e["key"] for e in results["finished_runs"])


def _without_times(value):
    """Every number except wall times (the only thing allowed to differ between two calls)."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if not k.endswith("seconds") and k != "total"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_a_killed_reproduction_resumes_where_it_stopped(tmp_path):
    n_digits = len(rp.digits_specs(rp.TINY, SEEDS))
    start = time.perf_counter()
    subprocess.run(_command(tmp_path / "straight"), env=_env(), check=True, capture_output=True)
    straight_s = time.perf_counter() - start

    out = tmp_path / "rq"
    # 1st call: killed in the middle of the digits part.
    first = _kill_when(out, tmp_path / "1.log", lambda r: _digits_runs(r) >= n_digits // 2)
    done = _digits_runs(first)
    assert done < n_digits and "digits" not in first["parts"]
    # 2nd call: reuses those runs (trains only the others), killed after the digits, variance,
    # anatomy and overhead parts, two thirds of the way through the transformer runs.
    n_translation = _translation_runs(_results(tmp_path / "straight"))
    second = _kill_when(out, tmp_path / "2.log", lambda r: _translation_runs(r) >= 2 * n_translation // 3)
    assert {"digits", "variance", "anatomy", "overhead"} <= set(second["parts"])
    log = (tmp_path / "2.log").read_text()
    assert f"{done} of {n_digits} runs already finished; running {n_digits - done}" in log
    assert "transformer" not in second["parts"]
    # 3rd call: keeps those parts and runs, finishes the rest in well under half the time of a whole run.
    start = time.perf_counter()
    third = subprocess.run(_command(out), env=_env(), check=True, capture_output=True, text=True)
    resumed_s = time.perf_counter() - start
    assert "part digits: kept" in third.stdout and "part variance: kept" in third.stdout
    print(f"whole run {straight_s:.1f} s, resumed after the kills {resumed_s:.1f} s")
    assert resumed_s < straight_s / 2

    a, b = _results(tmp_path / "straight"), _results(out)
    for part in ("digits", "variance", "anatomy", "transformer"):  # overhead is a timing
        assert _without_times(b["parts"][part]) == _without_times(a["parts"][part]), part
    report = (out / "report.md").read_text()
    assert "## 1. Accuracy" in report and "Parts finished: digits, variance" in report


def test_fresh_repeats_everything_and_a_damaged_results_file_is_one_line(tmp_path, capsys):
    out = tmp_path / "rq"
    out.mkdir()
    (out / "results.json").write_text('{"parts": {"digits": ')
    argv = ["reproduce", "--tiny", "--jobs", "1", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results.json is damaged" in err[0] and "--fresh" in err[0]
    (out / "results.json").write_text("[1, 2, 3]")
    assert main(argv) == 2
    assert "is not the results.json of refqt reproduce" in capsys.readouterr().err
    assert main([*argv, "--fresh"]) == 0
    assert "resuming" not in capsys.readouterr().out
    assert main(argv) == 0
    assert "part transformer: kept" in capsys.readouterr().out


def test_a_finished_run_is_reused_only_for_the_same_description_and_code(monkeypatch):
    spec = RunSpec(model="cnn", mode="exact", epochs=1, limit=64, measure_variance=False)
    other = RunSpec(model="cnn", mode="exact", epochs=1, limit=64, measure_variance=False, seed=1)
    saved = []
    finished = rp.FinishedRuns([], "v1", lambda: saved.append(1), lambda line: None)
    with rp.resuming(finished):
        first = rp.run_all([spec], jobs=1)
    assert len(saved) == 1 and finished.get(spec) == first[0] and finished.get(other) is None
    calls = []
    monkeypatch.setattr(rp, "run_one", lambda s: calls.append(s) or rp.run_spec(s))
    with rp.resuming(rp.FinishedRuns(finished.entries, "v1", lambda: None, lambda line: None)):
        assert rp.run_all([spec, other], jobs=1)[0] == first[0]
    assert calls == [other]  # the finished one was not run again
    calls.clear()
    with rp.resuming(rp.FinishedRuns(finished.entries, "v2", lambda: None, lambda line: None)):
        rp.run_all([spec], jobs=1)
    assert calls == [spec]  # another code version: run again
    assert rp.spec_key(spec) != rp.spec_key(other)
