"""Where the log-spectral distance comes from: LSD split by frequency range.

    python benchmarks/lsd_bands.py [--kbps 160] [--edges 17000,19000] [--tracks 15] [--seconds 10]
        [--excerpt 2 --of 3] [--model PATH]

``quality.py``'s LSD is, per channel and frame, the RMS over all bins of the
dB difference to the original, averaged over frames. Its square inside the
root, the mean over bins of the squared dB difference, is a sum over
frequency ranges; this prints each range's share of it (its bins' squared
differences summed and divided by all the bins), averaged over channels,
frames and excerpts, for the MP3 and for mp3fix, per bitrate and track and in
all. The shares add up to the mean squared difference; their square roots
are in dB. One excerpt per track (by default the middle one of three, as
``quality.py --excerpts 3`` takes them), encoded, decoded and restored as
there (seed 0, with the encoder's band and guards).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import SR, excerpts, mp3_twin, setting  # noqa: E402
from splits import read_splits  # noqa: E402

from mp3fix.codec import encoder_band_hz, encoder_reach_hz  # noqa: E402
from mp3fix.restore import Restorer  # noqa: E402
from mp3fix.spectral import stft  # noqa: E402


def lsd_shares(ref: np.ndarray, deg: np.ndarray, edges_hz: list[float], n_fft: int = 2048,
               hop: int = 512) -> np.ndarray:
    """Mean over channels and frames of each frequency range's share of the mean
    squared dB difference over all bins (``quality.lsd``'s spectra and floor);
    ranges ``[0, e1), [e1, e2), ..., [e_last, Nyquist]``. Sums to the mean of
    the squared difference."""
    a = np.abs(stft(ref, n_fft, hop)) ** 2
    b = np.abs(stft(deg, n_fft, hop)) ** 2
    d2 = (10 * np.log10(a + 1e-10) - 10 * np.log10(b + 1e-10)) ** 2  # (..., bins, frames)
    f = np.arange(d2.shape[-2]) * SR / n_fft
    bounds = [0.0, *edges_hz, np.inf]
    bins = d2.shape[-2]
    return np.array([(d2[..., (f >= lo) & (f < hi), :].sum(axis=-2) / bins).mean()
                     for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--split", default="test", choices=["test", "val"])
    ap.add_argument("--tracks", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--excerpt", type=int, default=2, help="which excerpt (1-based) of --of")
    ap.add_argument("--of", type=int, default=3)
    ap.add_argument("--kbps", default="160")
    ap.add_argument("--edges", default="17000,19000", help="range edges in Hz")
    ap.add_argument("--model", default=None)
    a = ap.parse_args()
    if not 1 <= a.excerpt <= a.of:
        raise SystemExit(f"error: --excerpt must be from 1 to --of ({a.of}), got {a.excerpt}")
    edges = [float(e) for e in a.edges.split(",") if e.strip()]
    tracks = read_splits(a.data)[a.split][: a.tracks]
    restorer = Restorer(a.model, device="cpu", threads=1)
    names = [f"{lo / 1000:g}-{hi / 1000:g} kHz" for lo, hi in zip([0.0, *edges], [*edges, SR / 2], strict=True)]
    print(f"| kbit/s | track | system | {' | '.join(names)} | LSD-like total |")
    print(f"|---|---|---|{'---|' * len(names)}---|")
    for kbps in (int(k) for k in a.kbps.split(",")):
        s = setting(kbps)
        totals = {"mp3": [], "mp3fix": []}
        for path in tracks:
            ref = excerpts(path, a.seconds, a.of)[a.excerpt - 1]
            dec, orig = mp3_twin(ref, s)
            band = encoder_band_hz("mp3", kbps, s.channels, s.rate)
            reach = encoder_reach_hz("mp3", kbps, s.channels, s.rate)
            (y,) = restorer.restore(dec, SR, seed=0, variants=1, encoder_band_hz=band, encoder_reach_hz=reach)
            for name, x in (("mp3", dec), ("mp3fix", y)):
                shares = lsd_shares(orig, x, edges)
                totals[name].append(shares)
                cells = " | ".join(f"{np.sqrt(v):.1f}" for v in shares)
                print(f"| {kbps} | {Path(path).stem} | {name} | {cells} | {np.sqrt(shares.sum()):.1f} |", flush=True)
        for name, rows in totals.items():
            mean = np.mean(rows, axis=0)
            cells = " | ".join(f"**{np.sqrt(v):.1f}**" for v in mean)
            print(f"| {kbps} | all ({len(rows)}) | {name} | {cells} | **{np.sqrt(mean.sum()):.1f}** |")


if __name__ == "__main__":
    main()
