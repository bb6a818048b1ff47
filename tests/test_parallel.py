"""Tests for mp3fix.parallel: sharing out cores, the per-file step, the worker pool.

The pool tests spawn real worker processes with the tiny fill model, so they
are few: results and their order, a worker that cannot load its model, and
stopping early (Ctrl-C) without leaving partial outputs.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mp3fix.batch import Job
from mp3fix.errors import ModelError
from mp3fix.parallel import RestoreSettings, oversubscription_warning, restore_job, run_parallel, threads_per_job
from mp3fix.restore import Restorer
from tests.helpers import FILL_MODEL, lowpass_noise, write_wav


@pytest.mark.parametrize(("cores", "jobs", "threads", "expected"), [
    (2, 1, None, 2),
    (2, 2, None, 1),
    (2, 4, None, 1),  # never zero
    (16, 3, None, 5),
    (16, 4, None, 4),
    (16, 3, 2, 2),  # an explicit choice is kept
    (2, 2, 8, 8),
])
def test_threads_per_job(cores: int, jobs: int, threads: int | None, expected: int) -> None:
    assert threads_per_job(cores, jobs, threads) == expected


def test_oversubscription_warning_only_for_explicit_threads() -> None:
    assert oversubscription_warning(2, 4, None) is None  # shared out by us: never too many
    assert oversubscription_warning(16, 4, 4) is None
    line = oversubscription_warning(2, 2, 4)
    assert line is not None and "\n" not in line and "8" in line and "2 cores" in line


def _jobs(folder: Path, n: int, seconds: float = 1.0) -> list[Job]:
    jobs = []
    for i in range(n):
        x = lowpass_noise(int(seconds * 44100), 5000.0, channels=2, seed=i)
        src = write_wav(folder / f"in{i}.wav", x, 44100)
        jobs.append(Job(src, [folder / "out" / f"in{i}.wav"]))
    return jobs


def test_restore_job_turns_errors_into_results(tmp_path: Path) -> None:
    settings = RestoreSettings(model=FILL_MODEL, device="cpu", threads=1)
    restorer = settings.restorer()
    (good,) = _jobs(tmp_path, 1, 0.2)
    ok = restore_job(restorer, good, settings)
    assert ok.status == "ok" and ok.outputs == good.outputs and abs(ok.seconds - 0.2) < 1e-3
    missing = Job(tmp_path / "missing.wav", [tmp_path / "out" / "missing.wav"])
    failed = restore_job(restorer, missing, settings)
    assert failed.status == "failed" and "missing.wav" in failed.message


def test_pool_restores_every_job_like_one_process(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 3)
    jobs[1].skipped = True
    jobs.append(Job(tmp_path / "missing.wav", [tmp_path / "out" / "missing.wav"]))
    settings = RestoreSettings(model=FILL_MODEL, device="cpu", seed=4)
    with closing(run_parallel(jobs, settings, workers=2)) as finished:
        got = dict(finished)
    assert sorted(got) == [0, 2, 3]  # skipped jobs are not run
    assert got[3].status == "failed" and "missing.wav" in got[3].message
    restorer = settings.restorer()
    for i in (0, 2):
        assert got[i].status == "ok"
        y = sf.read(str(jobs[i].outputs[0]), dtype="float32")[0].T
        x = sf.read(str(jobs[i].src), dtype="float32")[0].T
        (expected,) = restorer.restore(x, 44100, seed=4)
        np.testing.assert_array_equal(y, expected)
    assert not jobs[1].outputs[0].exists()


def test_a_worker_writes_every_highs_level(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 2, 0.4)
    for i, job in enumerate(jobs):
        job.outputs = [tmp_path / "out" / f"in{i}.highs-6.wav", tmp_path / "out" / f"in{i}.highs0.wav"]
    settings = RestoreSettings(model=FILL_MODEL, device="cpu", seed=4, highs=(-6.0, 0.0))
    with closing(run_parallel(jobs, settings, workers=2)) as finished:
        got = dict(finished)
    assert sorted(got) == [0, 1] and all(r.status == "ok" for r in got.values())
    for job in jobs:
        x = sf.read(str(job.src), dtype="float32")[0].T
        for out, level in zip(job.outputs, (-6.0, 0.0), strict=True):
            one_level = Restorer(FILL_MODEL, device="cpu", threads=1, highs_db=level)
            (expected,) = one_level.restore(x, 44100, seed=4)
            np.testing.assert_array_equal(sf.read(str(out), dtype="float32")[0].T, expected)


def test_model_problems_are_found_before_any_worker_starts(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        run_parallel(_jobs(tmp_path, 2, 0.1), RestoreSettings(model=tmp_path / "none.onnx"), workers=2)


def test_worker_that_cannot_load_the_model_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the sidecar is fine (the parent's check passes), the ONNX file is not
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not onnx")
    model.with_name("broken.onnx.json").write_text(FILL_MODEL.with_name("fill.onnx.json").read_text()
                                                   .replace('"sha256"', '"unchecked"'))
    jobs = _jobs(tmp_path, 2, 0.1)
    with pytest.raises(ModelError, match="cannot load model"), closing(
            run_parallel(jobs, RestoreSettings(model=model, device="cpu"), workers=2)) as finished:
        list(finished)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_stopping_early_cancels_and_leaves_no_partial_files(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 5, 3.0)
    finished = run_parallel(jobs, RestoreSettings(model=FILL_MODEL, device="cpu"), workers=2)
    first, result = next(finished)
    assert result.status == "ok"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while the CLI waits for the next file
        finished.throw(KeyboardInterrupt)
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.endswith(".partial")], names
    assert jobs[first].outputs[0].name in names
    assert jobs[4].outputs[0].name not in names  # never started
    for name in names:  # whatever was finished is complete
        assert sf.info(str(out / name)).frames == 3 * 44100
