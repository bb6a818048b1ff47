"""Stereo width of the restored band: side minus mid power above the cutoff, dB.

    python benchmarks/width.py [--tracks 15] [--kbps 16,32]

On the middle 10-s excerpt of each held-out track: the original, the MP3 (in
the 64 bins under its cutoff, where it still has content), band copy, and
mp3fix restoring left and right each with its own z (``mid_side=False``, as
until 2026-11-29) or mid and side with one z (as shipped). Prints the median
over excerpts and the correlation of each one's width with the original's
across excerpts. Model card, "What limits it now", item 18.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import band_copy  # noqa: E402
from quality import SR, excerpts, mp3_twin, setting  # noqa: E402
from splits import read_splits  # noqa: E402

from mp3fix.restore import Restorer  # noqa: E402
from mp3fix.spectral import detect_cutoff, stft, to_mid_side  # noqa: E402

N_FFT, HOP = 1024, 512


def width_db(x: np.ndarray, lo: int, hi: int) -> float:
    """Side power over mid power (dB) of stereo ``x`` (2, n) in STFT bins [lo, hi)."""
    p = np.abs(stft(to_mid_side(x), N_FFT, HOP)[:, lo:hi]) ** 2
    return float(10 * np.log10((p[1].mean() + 1e-20) / (p[0].mean() + 1e-20)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--tracks", type=int, default=15)
    ap.add_argument("--kbps", default="16,32")
    a = ap.parse_args()
    tracks = read_splits(a.data)["test"][: a.tracks]
    restorers = {"left and right": Restorer(None, device="cpu", threads=1, mid_side=False),
                 "mid and side": Restorer(None, device="cpu", threads=1)}
    print("| kbit/s | excerpts | original | MP3 (under its cutoff) | band copy | mp3fix, left and right "
          "| mp3fix, mid and side |")
    print("|---|---|---|---|---|---|---|")
    for kb in (int(k) for k in a.kbps.split(",")):
        rows = []
        for path in tracks:
            dec, ref = mp3_twin(excerpts(path, 10.0, 3)[1], setting(kb))
            cut = detect_cutoff(np.abs(stft(dec, N_FFT, HOP)[:, : N_FFT // 2]) ** 2)
            if cut >= 400:
                continue  # nothing restored
            above = (cut + 8, 400)  # past the cutoff's ramp, up to 17 kHz
            row = [width_db(ref, *above), width_db(dec, cut - 64, cut), width_db(band_copy(dec), *above)]
            row += [width_db(r.restore(dec, SR, seed=0)[0], *above) for r in restorers.values()]
            rows.append(row)
        w = np.array(rows)
        cells = [f"{np.median(w[:, 0]):.1f}"] + [
            f"{np.median(w[:, k]):.1f} (r {np.corrcoef(w[:, k], w[:, 0])[0, 1]:.2f})" for k in range(1, 5)]
        print(f"| {kb} | {len(rows)} | " + " | ".join(cells) + " |")
    print("\nside minus mid, dB, median over the excerpts; r: correlation with the original's width")


if __name__ == "__main__":
    main()
