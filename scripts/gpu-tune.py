"""On a lent GPU after scripts/gpu-speed.sh: where the CUDA session's time goes.

Times Restorer.restore (library call, in-process) on a synthetic 3-minute and
30-minute stereo song with an MP3-like 5.5 kHz cutoff: the first call (session
and cuDNN set-up included), the median of three more, and one 30-minute call,
for CPU (all cores and 2 threads) and CUDA with cuDNN's convolution search
EXHAUSTIVE (onnxruntime's default), HEURISTIC (mp3fix's) and DEFAULT, and 1, 8
or 32 chunks a call. ``python scripts/gpu-tune.py [quick]``; quick: the rows
that decide mp3fix's settings.
"""
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, "benchmarks")
from speed import SR, synth_block  # noqa: E402

from mp3fix.restore import Restorer  # noqa: E402

real = ort.InferenceSession
SEARCH = {"v": None}


def session(path, sess_options=None, providers=None):
    first = providers[0] if providers else None
    if SEARCH["v"] and (first == "CUDAExecutionProvider" or (isinstance(first, tuple) and first[0] == "CUDAExecutionProvider")):
        providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": SEARCH["v"]})] + providers[1:]
    return real(path, sess_options=sess_options, providers=providers)


ort.InferenceSession = session


def song(minutes):
    x = np.concatenate([synth_block(s, min(SR * 30, int(minutes * 60 * SR) - s))
                        for s in range(0, int(minutes * 60 * SR), SR * 30)], 1)
    spec = np.fft.rfft(x)
    spec[:, np.fft.rfftfreq(x.shape[1], 1 / SR) > 5500] = 0
    return np.fft.irfft(spec, x.shape[1]).astype(np.float32)


x3 = song(3)
print("| device | cuDNN search | chunks a call | threads | first 3-min restore s | then (median of 3) | 30-min restore s |")
print("|---|---|---|---|---|---|---|")
x30 = song(30)
ROWS = [("cpu", None, 1, None), ("cpu", None, 1, 2), ("cuda", "EXHAUSTIVE", 8, None),
        ("cuda", "HEURISTIC", 8, None), ("cuda", "DEFAULT", 8, None),
        ("cuda", "HEURISTIC", 1, None), ("cuda", "HEURISTIC", 32, None)]
if sys.argv[1:] == ["quick"]:
    ROWS = [("cpu", None, 1, None), ("cuda", "HEURISTIC", 1, None), ("cuda", "HEURISTIC", 8, None),
            ("cuda", "EXHAUSTIVE", 8, None)]
for dev, search, batch, threads in ROWS:
    SEARCH["v"] = search
    t = time.perf_counter()
    r = Restorer(None, device=dev, threads=threads, chunk_batch=batch)
    r.restore(x3, SR, seed=0)
    first = time.perf_counter() - t
    times = []
    for _ in range(3):
        t = time.perf_counter()
        r.restore(x3, SR, seed=0)
        times.append(time.perf_counter() - t)
    t3 = float(np.median(times))
    t = time.perf_counter()
    r.restore(x30, SR, seed=0)
    t30 = time.perf_counter() - t
    print(f"| {r.generator.device} | {search or '-'} | {batch} | "
          f"{threads or 'all'} | {first:.2f} | {t3:.2f} | {t30:.2f} |", flush=True)
