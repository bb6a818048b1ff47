"""Running a planned batch: one file at a time here, or several in worker processes.

This module owns the per-file step (``restore_job``: restore one job, a failure
becomes a failed ``BatchResult`` so the batch goes on), the settings a worker
needs (``RestoreSettings``), how the cores are shared out (``threads_per_job``)
and the process pool behind ``mp3fix restore --jobs N`` (``run_parallel``).
Nothing here prints: the CLI shows progress, notices and the summary.

Each worker builds its own ``Restorer`` once, in the pool's initializer, and
keeps it for every file it gets: an onnxruntime session cannot be pickled,
and a forked copy of one would share the parent's thread pool, so workers are
spawned, never forked.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mp3fix.allocator import tune_allocator
from mp3fix.batch import BatchResult, Job
from mp3fix.errors import Mp3fixError
from mp3fix.model import DEFAULT_SEED

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

    from mp3fix.restore import Restorer


# Signals that stop a batch the way Ctrl-C does: partial outputs removed, finished ones kept.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C raises KeyboardInterrupt, so that every
    cleanup that handles one handles both; ``signum`` gives the exit code 128 + N."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Stopped` (Ctrl-C raises
    KeyboardInterrupt as always); the old handlers come back after it. Only in
    the main thread, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS if sig != signal.SIGINT}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def threads_per_job(cores: int, jobs: int, threads: int | None = None) -> int:
    """Model threads for each of ``jobs`` parallel files: ``threads`` when the user
    gave it, else the ``cores`` shared out evenly (at least one each)."""
    if threads is not None:
        return threads
    return max(1, cores // max(1, jobs))


def oversubscription_warning(cores: int, jobs: int, threads: int | None) -> str | None:
    """One line when an explicit ``threads`` makes ``jobs`` x ``threads`` exceed ``cores``."""
    if threads is None or jobs * threads <= cores:
        return None
    return (f"--jobs {jobs} x --threads {threads} = {jobs * threads} model threads on {cores} cores: "
            "they will compete for them")


@dataclass(frozen=True)
class RestoreSettings:
    """How to build a ``Restorer`` and restore a file with it; picklable, so a
    worker process can be given it."""

    model: Path | None = None
    device: str = "auto"
    threads: int | None = None  # model threads (per worker when there are several)
    phase: str = "copy"
    phase_iters: int = 0
    chunk_batch: int | None = None
    seed: int = DEFAULT_SEED
    bit_depth: str | None = None
    overwrite: bool = False
    # generator calls on a worker thread beside the DSP (Restorer's pipeline);
    # the command turns it off when several jobs already keep the cores busy
    pipeline: bool = True
    # leave a recording alone where the MP3's bitrate says it ends below the encoder's band
    guard: bool = True
    # where the recordings themselves end, as the user knows it (None: not known)
    source_band_hz: float | None = None
    # fill the encoder's dropouts under the cutoff where the model's sidecar asks for it
    hole_fill: bool = True
    # the restored band this many dB louder (negative: quieter) than the model chose; with
    # several levels, each file is written once per level (the job's outputs, level by level)
    highs: tuple[float, ...] = (0.0,)
    # outputs that exist already are kept and not written again (the others are)
    skip_existing: bool = False

    def restorer(self) -> Restorer:
        from mp3fix.restore import Restorer

        return Restorer(self.model, device=self.device, threads=self.threads, phase=self.phase,
                        phase_iters=self.phase_iters, chunk_batch=self.chunk_batch, pipeline=self.pipeline,
                        hole_fill=self.hole_fill)


def restore_job(
    restorer: Restorer,
    job: Job,
    settings: RestoreSettings,
    on_progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Restore one (not skipped) job; an Mp3fixError or OSError fails that job only
    and comes back as a failed result. Anything else (Ctrl-C included) propagates."""
    t0 = time.perf_counter()
    try:
        fr = restorer.restore_file(job.src, job.outputs, seed=settings.seed, bit_depth=settings.bit_depth,
                                   on_progress=on_progress, overwrite=settings.overwrite, guard=settings.guard,
                                   source_band_hz=settings.source_band_hz,
                                   highs=settings.highs, skip_existing=settings.skip_existing)
    except (Mp3fixError, OSError) as exc:
        if isinstance(exc, Mp3fixError):
            message = str(exc)
        else:
            message = f"{exc.filename or job.src}: {exc.strerror or exc}"
        return BatchResult(job.src, job.outputs, "failed", message, wall=time.perf_counter() - t0)
    return BatchResult(job.src, fr.outputs, "ok", seconds=fr.seconds, wall=time.perf_counter() - t0,
                       notes=list(fr.notes))


# ---------------------------------------------------------------- worker side


class _Cancelled(Exception):
    """Raised inside a worker's restore_file so that it removes its partial outputs."""


@dataclass
class _WorkerState:
    settings: RestoreSettings
    cancelled: Event
    restorer: Restorer | None = None
    error: Mp3fixError | None = None  # the Restorer could not be built


_state: _WorkerState | None = None  # one per worker process, set by _init_worker


def _init_worker(settings: RestoreSettings, cancelled: Event) -> None:
    global _state
    # Ctrl-C goes to the whole process group; the parent handles it and stops
    # workers through `cancelled`, between two chunks, so that they clean up.
    # The same for a kill of the group (SIGTERM) or a closed terminal (SIGHUP).
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    tune_allocator()
    _state = _WorkerState(settings, cancelled)
    try:
        _state.restorer = settings.restorer()
    except Mp3fixError as exc:  # reported by the first job, which the parent turns into an error
        _state.error = exc


def _run_in_worker(job: Job) -> tuple[BatchResult, str | None] | None:
    """(result, the restorer's notice) for one job; None when cancelled."""
    state = _state
    assert state is not None, "_run_in_worker runs in a pool worker set up by _init_worker"
    if state.error is not None:
        raise state.error
    assert state.restorer is not None
    if state.cancelled.is_set():
        return None

    def check(done: int, total: int) -> None:  # called once per restored block
        if state.cancelled.is_set():
            raise _Cancelled

    try:
        result = restore_job(state.restorer, job, state.settings, on_progress=check)
    except _Cancelled:
        return None
    return result, state.restorer.notice


# ---------------------------------------------------------------- parent side


def run_parallel(
    jobs: list[Job],
    settings: RestoreSettings,
    workers: int,
    on_notice: Callable[[str], None] | None = None,
) -> Iterator[tuple[int, BatchResult]]:
    """Restore the jobs that are not skipped in ``workers`` spawned processes;
    yield ``(index into jobs, result)`` as each file finishes.

    Without ``settings.threads`` each worker gets ``threads_per_job`` of the
    available cores. ``on_notice`` gets each distinct restorer notice once.
    A worker that cannot build its Restorer (a corrupt model, an unusable
    device) raises that Mp3fixError here.

    The model and device are checked here, before any process starts. Use the
    iterator in ``contextlib.closing``: closing it early, or an exception while
    waiting (Ctrl-C), cancels the files not started, makes running workers stop
    at their next chunk and remove their partial outputs, and waits for them.
    """
    from mp3fix.model import load_config, resolve_model
    from mp3fix.runtime import choose_providers, default_threads

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    # the errors every worker would hit, found once and before any work
    load_config(resolve_model(settings.model))
    choose_providers(settings.device)
    settings = replace(settings, threads=threads_per_job(default_threads(), workers, settings.threads))
    return _run_pool(jobs, settings, workers, on_notice)


def _run_pool(
    jobs: list[Job],
    settings: RestoreSettings,
    workers: int,
    on_notice: Callable[[str], None] | None,
) -> Iterator[tuple[int, BatchResult]]:
    todo = iter([(i, job) for i, job in enumerate(jobs) if not job.skipped])
    ctx = multiprocessing.get_context("spawn")
    cancelled = ctx.Event()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(settings, cancelled))
    running: dict[Future[tuple[BatchResult, str | None] | None], int] = {}
    notices: set[str] = set()

    def submit_next() -> None:
        # Only as many files in flight as workers: the pool would otherwise move
        # more into its call queue, where they can no longer be cancelled.
        item = next(todo, None)
        if item is not None:
            running[pool.submit(_run_in_worker, item[1])] = item[0]

    try:
        for _ in range(workers):
            submit_next()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index = running.pop(future)
                out = future.result()
                assert out is not None, "a job is only cancelled once this loop has ended"
                result, notice = out
                if notice is not None and notice not in notices:
                    notices.add(notice)
                    if on_notice is not None:
                        on_notice(notice)
                submit_next()  # before yielding: keep the workers busy meanwhile
                yield index, result
    finally:
        cancelled.set()
        pool.shutdown(wait=True, cancel_futures=True)
