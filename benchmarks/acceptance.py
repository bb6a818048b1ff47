"""End-to-end checks of the restore pipeline on real encoder output, as a table.

    python benchmarks/acceptance.py [--model PATH]

Encodes a broadband test signal (noise under an amplitude envelope, 20 s,
44.1 kHz stereo) with the ``lame`` command line when it is installed (it writes
32 kbit/s stereo at 16 kHz and 16 kbit/s mono at 16 kHz, without a gapless
tag), otherwise with ffmpeg's libmp3lame without the tag, and runs the real
``mp3fix restore`` command on it. Checks: output rate, channels, length,
lag against the original (cross-correlation), same seed -> identical file,
``--variants 3`` -> three different files, and that empty, random-byte, text
and truncated ``.mp3`` files each give one clean error line, a non-zero exit
and no output file.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import correlate

from mp3fix.audio import ffmpeg_exe

SR = 44100


def signal(seconds: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    n = int(seconds * SR)
    knots = int(seconds * 10) + 2
    env = np.interp(np.arange(n), np.linspace(0, n - 1, knots), rng.uniform(0.05, 1.0, knots))
    return (rng.standard_normal((2, n)) * 0.15 * env).astype(np.float32)


def encode(wav: Path, dst: Path, kbps: int, mono: bool) -> str:
    lame = shutil.which("lame")
    if lame:
        subprocess.run([lame, "--quiet", "-b", str(kbps)] + (["-m", "m"] if mono else []) + [str(wav), str(dst)],
                       check=True)
        return "lame"
    rate = 16000
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(wav), "-ac", "1" if mono else "2", "-ar", str(rate),
                    "-c:a", "libmp3lame", "-b:a", f"{kbps}k", "-write_xing", "0", str(dst)], check=True)
    return "ffmpeg libmp3lame, no tag"


def lag(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    c = correlate(a[:n], b[:n], mode="full", method="fft")
    return int(np.argmax(c)) - (n - 1)


def mp3fix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mp3fix", *args], capture_output=True, text=True)


def md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    a = ap.parse_args()
    model = ["--model", a.model] if a.model else []
    rows: list[tuple[str, str, bool]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        ref = signal()
        wav = t / "original.wav"
        sf.write(wav, ref.T, SR, subtype="FLOAT")
        for kbps, mono in ((32, False), (16, True)):
            mp3 = t / f"in{kbps}{'m' if mono else 's'}.mp3"
            how = encode(wav, mp3, kbps, mono)
            out = t / f"out{kbps}.wav"
            r = mp3fix("restore", str(mp3), "-o", str(out), "-q", *model)
            name = f"{kbps} kbit/s {'mono' if mono else 'stereo'} ({how})"
            if r.returncode != 0:
                rows.append((name, f"restore failed: {r.stderr.strip()}", False))
                continue
            y, rate = sf.read(out, dtype="float32", always_2d=True)
            y = y.T
            want_ch = 1 if mono else 2
            target = ref.mean(0) if mono else ref[0]
            lg = lag(y[0], target)
            rows.append((f"{name}: rate", f"{rate} Hz", rate == SR))
            rows.append((f"{name}: channels", str(y.shape[0]), y.shape[0] == want_ch))
            diff = y.shape[1] - ref.shape[1]
            rows.append((f"{name}: length vs original", f"{y.shape[1]} ({diff:+d} samples, {diff / SR * 1000:+.1f} ms)",
                         0 <= diff <= 2304 * SR // 16000))
            rows.append((f"{name}: lag vs original", f"{lg} samples", lg == 0))
        mp3 = t / "in32s.mp3"
        a1, a2 = t / "seed-a.wav", t / "seed-b.wav"
        mp3fix("restore", str(mp3), "-o", str(a1), "-q", "--seed", "5", *model)
        mp3fix("restore", str(mp3), "-o", str(a2), "-q", "--seed", "5", *model)
        rows.append(("same --seed twice: identical files", f"md5 {md5(a1)[:8]} / {md5(a2)[:8]}", md5(a1) == md5(a2)))
        v = t / "var.wav"
        mp3fix("restore", str(mp3), "-o", str(v), "-q", "--variants", "3", *model)
        files = [t / f"var.v{i}.wav" for i in (1, 2, 3)]
        ok = all(f.exists() for f in files)
        hashes = {md5(f) for f in files} if ok else set()
        rows.append(("--variants 3: three different files", ", ".join(f.name for f in files if f.exists()),
                     ok and len(hashes) == 3))
        good = mp3.read_bytes()
        bad = {"empty": b"", "random bytes": np.random.default_rng(1).bytes(20000), "text": b"hello, not audio\n" * 50,
               "truncated": good[: len(good) // 2 + 7]}
        for what, data in bad.items():
            src = t / f"bad-{what.replace(' ', '_')}.mp3"
            src.write_bytes(data)
            dst = t / f"bad-{what.replace(' ', '_')}.wav"
            r = mp3fix("restore", str(src), "-o", str(dst), *model)
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            clean = r.returncode != 0 and len(lines) == 1 and "Traceback" not in r.stderr and not dst.exists()
            leftovers = list(t.glob(".*.partial"))
            rows.append((f"{what} .mp3: one error line, exit {r.returncode}, no output",
                         lines[0][:90] if lines else "(nothing on stderr)", clean and not leftovers))
    width = max(len(r[0]) for r in rows)
    for name, value, ok in rows:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<{width}}  {value}")
    failed = sum(not ok for _, _, ok in rows)
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
