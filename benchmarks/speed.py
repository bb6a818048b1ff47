"""Speed and memory benchmark: per-stage times, real-time factor, DSP floor, peak memory.

    python benchmarks/speed.py [--minutes 3] [--long 60] [--threads 2] [--model PATH] [--kbps 64 [--keep-mp3-band]]

Makes a deterministic synthetic song (chords, drums, hi-hats) of ``--minutes``,
44.1 kHz stereo, encodes it with LAME at 32 kbit/s the way the ``lame`` command
line does (16 kHz; ``--kbps 64``: 64 kbit/s at 24 kHz). At both the shipped
model first fills the encoder's dropouts under the cutoff, a second generator
pass per chunk; ``--keep-mp3-band`` measures it without that),
then:
1. decode alone, at the file's rate and with resampling to 44.1 kHz;
2. one instrumented restore (library) with per-stage seconds, the stages in
   turn (``pipeline=False``); the DSP floor is decode + resample + STFT + iSTFT
   + write from that run; then the library as the command runs it, the
   generator on a worker thread beside the other stages;
3. the real command (``mp3fix restore ... -q`` in a fresh process), wall time
   and peak resident memory;
4. with ``--long M``: the same command on an M-minute file (peak memory, time);
5. with ``--batch N``: a folder of N songs (different seeds, ``--batch-minutes``
   each) restored with ``--jobs 1`` and ``--jobs 2`` (and more, up to the
   cores): files per minute.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mp3fix import audio
from mp3fix.allocator import tune_allocator
from mp3fix.restore import Restorer

SR = 44100


def synth_block(start: int, n: int, seed: int = 0) -> np.ndarray:
    """(2, n) float32 of a synthetic song, a pure function of the sample range."""
    t = (start + np.arange(n)) / SR
    beat = 0.5  # 120 bpm
    bar = 4 * beat
    chords = [[220.0, 277.2, 329.6], [196.0, 246.9, 293.7], [174.6, 220.0, 261.6], [164.8, 207.7, 246.9]]
    idx = (t // bar).astype(int) % len(chords)
    x = np.zeros(n)
    for j in range(3):
        f = np.array([chords[i][j] for i in range(len(chords))])[idx]
        for h in range(1, 8):
            x += 0.05 / h * np.sin(2 * np.pi * f * h * t + j)
    rng = np.random.default_rng([seed, start // SR])
    noise = rng.standard_normal(n)
    tb = t % beat
    kick = np.sin(2 * np.pi * 55 * tb) * np.exp(-tb * 18) * 0.5
    th = t % (beat / 2)
    hat = noise * np.exp(-th * 60) * 0.15
    left = x + kick + hat
    right = 0.9 * x + kick + np.roll(hat, 7)
    return np.stack([left, right]).astype(np.float32)


# the sample rate the lame command line picks for stereo at these bitrates
LAME_RATES = {32: 16000, 64: 24000}


def make_mp3(path: Path, seconds: float, kbps: int = 32, rate: int = 16000, seed: int = 0) -> None:
    """Encode the synthetic song without holding it in memory (piped to ffmpeg)."""
    cmd = [audio.ffmpeg_exe(), "-v", "error", "-y", "-f", "f32le", "-ar", str(SR), "-ac", "2", "-i", "pipe:0",
           "-ar", str(rate), "-c:a", "libmp3lame", "-b:a", f"{kbps}k", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    total = int(seconds * SR)
    for s in range(0, total, SR * 10):
        proc.stdin.write(synth_block(s, min(SR * 10, total - s), seed).T.astype("<f4").tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("ffmpeg failed to encode the benchmark file")


def time_decode(path: Path, rate: int | None) -> float:
    info = audio.probe(path)
    t = time.perf_counter()
    for _ in audio.decode_blocks(info, rate or info.sample_rate):
        pass
    return time.perf_counter() - t


def run_cli(src: Path, dst: Path, extra: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``mp3fix restore`` in a fresh process."""
    code = (
        "import resource, sys\n"
        "from mp3fix.cli import app\n"
        f"sys.argv = ['mp3fix', 'restore', {str(src)!r}, '-o', {str(dst)!r}, '-q'] + {extra!r}\n"
        "try:\n    app()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"mp3fix restore failed: {proc.stderr.strip()}")
    rss_kb = int(next(ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("MAXRSS")))
    return wall, rss_kb / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--long", type=float, default=0.0, help="also run an N-minute file (e.g. 60)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch", type=int, default=0, help="also restore a folder of N songs with --jobs 1, 2, ...")
    ap.add_argument("--batch-minutes", type=float, default=3.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--kbps", type=int, default=32, choices=sorted(LAME_RATES),
                    help="bitrate of the test files, at the rate the lame command line picks")
    ap.add_argument("--keep-mp3-band", action="store_true",
                    help="without the dropout filling under the cutoff (its own generator pass)")
    a = ap.parse_args()
    rate = LAME_RATES[a.kbps]
    extra = ["--device", a.device] + (["--threads", str(a.threads)] if a.threads else [])
    extra += ["--model", a.model] if a.model else []
    extra += ["--keep-mp3-band"] if a.keep_mp3_band else []
    fill = not a.keep_mp3_band
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"song-{a.kbps}k.mp3"
        make_mp3(src, a.minutes * 60, a.kbps, rate)
        seconds = a.minutes * 60
        results["decode"] = time_decode(src, None)
        results["decode+resample"] = time_decode(src, SR)
        tune_allocator()  # as the command does, so that the stage table matches it
        # Stages are timed with the generator called in line (pipeline off), so
        # that each stage's time is its own and the DSP floor is the DSP alone,
        # not inflated by a model running beside it.
        restorer = Restorer(a.model, device=a.device, threads=a.threads, pipeline=False, hole_fill=fill)
        restorer.timings = {}
        t = time.perf_counter()
        restorer.restore_file(src, [Path(tmp) / "serial.wav"])
        serial_total = time.perf_counter() - t
        st = restorer.timings
        # the library as the command runs it: generator calls on a worker thread
        # overlapping the decoding, transforms and writing of the other chunks
        restorer = Restorer(a.model, device=a.device, threads=a.threads, hole_fill=fill)
        t = time.perf_counter()
        restorer.restore_file(src, [Path(tmp) / "lib.wav"])
        lib_total = time.perf_counter() - t
        cli_wall, cli_rss = run_cli(src, Path(tmp) / "cli.wav", extra)
        floor = st["decode"] + st["stft"] + st["istft"] + st["write"]
        rows = [
            ("decode (ffmpeg, file rate)", results["decode"]),
            ("resample (soxr, in ffmpeg)", results["decode+resample"] - results["decode"]),
            ("decode + resample, in the restore run", st["decode"]),
            ("STFT + cutoff", st["stft"]),
            ("model (onnxruntime, incl. its inputs and z)", st["model"]),
            ("phase", st["phase"]),
            ("iSTFT", st["istft"]),
            ("write (float WAV)", st["write"]),
            ("chunking and other overhead", serial_total - sum(st.values())),
            ("restore, library call, stages in turn", serial_total),
            ("DSP floor (decode+resample+STFT+iSTFT+write)", floor),
            ("restore, library call, model beside the rest (default)", lib_total),
            ("`mp3fix restore`, whole command", cli_wall),
        ]
        print(f"\n{a.minutes:g}-minute 44.1 kHz stereo song, LAME {a.kbps} kbit/s ({rate // 1000} kHz); "
              f"device {a.device}, threads {a.threads or 'default'}\n")
        print("| stage | seconds | x real time |")
        print("|---|---|---|")
        for name, sec in rows:
            print(f"| {name} | {sec:.2f} | {seconds / sec:.0f}x |" if sec > 0 else f"| {name} | {sec:.2f} | - |")
        print(f"\ncommand / DSP floor: {cli_wall / floor:.1f}x; library / DSP floor: {lib_total / floor:.1f}x; "
              f"peak memory of the command: {cli_rss:.0f} MB")
        out = {"minutes": a.minutes, "stages": st, "serial_total": serial_total, "library_total": lib_total,
               "cli_wall": cli_wall,
               "cli_peak_mb": cli_rss, "dsp_floor": floor, **results}
        if a.long:
            long_src = Path(tmp) / f"long-{a.kbps}k.mp3"
            make_mp3(long_src, a.long * 60, a.kbps, rate)
            wall, rss = run_cli(long_src, Path(tmp) / "long.wav", extra)
            print(f"\n{a.long:g}-minute file: {wall:.1f} s ({a.long * 60 / wall:.0f}x real time), "
                  f"peak memory {rss:.0f} MB")
            out.update({"long_minutes": a.long, "long_wall": wall, "long_peak_mb": rss})
        if a.batch:
            import os

            folder = Path(tmp) / "batch"
            folder.mkdir()
            for i in range(a.batch):
                make_mp3(folder / f"song{i:02d}.mp3", a.batch_minutes * 60, a.kbps, rate, seed=i + 1)
            cores = len(os.sched_getaffinity(0))
            print(f"\nfolder of {a.batch} songs of {a.batch_minutes:g} min (LAME {a.kbps} kbit/s), {cores} cores\n")
            print("| jobs | model threads per job | seconds | files per minute |")
            print("|---|---|---|---|")
            jobs = 1
            out["batch"] = []
            while jobs <= cores:
                dst = Path(tmp) / f"batch-out-{jobs}"
                wall, _ = run_cli(folder, dst, extra + ["--jobs", str(jobs)])
                per_job = a.threads or max(1, cores // jobs)
                print(f"| {jobs} | {per_job} | {wall:.1f} | {a.batch * 60 / wall:.1f} |")
                out["batch"].append({"jobs": jobs, "threads": per_job, "wall": wall})
                jobs *= 2
        if a.json:
            a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
