"""Where the ViSQOL a restorer could win lies: oracle restorations.

    python benchmarks/oracles.py [--split val] [--excerpts 3] [--seconds 8]

Each oracle is band copy (``baselines.band_copy``'s fine structure, with the
phase mp3fix uses: the band below the cutoff, repeated upwards every 64 bins)
given one thing from the original above the MP3's cutoff:

- ``magnitude``: the original's STFT magnitudes (phase still copied);
- ``band level, every frame``: the original's power in each third-octave band
  in every STFT frame (11.6 ms), band copy's fine structure inside the band;
- ``band level, 0.5 s``: the same, both powers smoothed over 43 frames;
- ``band level, whole excerpt``: the same, averaged over the excerpt (the
  spectral balance only);
- ``mp3fix's band level, every frame``: not an oracle but a test of what a
  model that only predicts band levels could reach: band copy given mp3fix's
  own third-octave band levels in every frame instead of the original's;
- ``mp3fix's level in ERB bands, every frame``: the same with the bands of
  ``nets.BandGenerator`` (``--erb-bands``, 64 by default) and its gains
  interpolated across bins: what that generator would give if it matched
  mp3fix's band levels exactly;
- ``the original below the cutoff``: the other way round, mp3fix above the
  cutoff and the original's STFT (magnitude and phase) below it: what mending
  the encoder's holes and smearing in the band it kept could be worth.

It prints ViSQOL minus band copy for each oracle and for mp3fix (seed 0), and,
for band copy and mp3fix, how their fast band-level changes (level in dB minus
its 0.5-s moving average, per third-octave band within 50 dB of the excerpt's
loudest) follow the original's: the correlation, and the median ratio of their
standard deviations. Validation tracks by default: this is a diagnostic for
choosing what to train, not a held-out score.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import band_copy  # noqa: E402
from quality import SETTINGS, SR, Visqol, excerpts  # noqa: E402
from splits import read_splits  # noqa: E402

from mp3fix.audio import decode  # noqa: E402
from mp3fix.phase import copy_phase_sources  # noqa: E402
from mp3fix.restore import Restorer  # noqa: E402
from mp3fix.spectral import detect_cutoff, istft, stft  # noqa: E402
from mp3fix.train.dataset import encode_mp3  # noqa: E402

N_FFT = 1024
HOP = 512
SMOOTH = 43  # frames: 0.5 s
ORACLES = {"magnitude": "mag", "band level, every frame": "frame", "band level, 0.5 s": "slow",
           "band level, whole excerpt": "static"}
MODEL_LEVELS = "mp3fix's band level, every frame"
MODEL_ERB = "mp3fix's level in ERB bands, every frame"
BELOW = "the original below the cutoff (mp3fix above)"


def third_octaves(first_bin: int, bins: int) -> np.ndarray:
    """Band index (0, 1, ...) of each bin from ``first_bin`` up: third octaves starting there."""
    k = np.arange(first_bin, bins)
    return np.floor(3 * np.log2(k / first_bin) + 1e-9).astype(int)


def oracle(dec: np.ndarray, ref: np.ndarray, mode: str, erb_bands: int = 64) -> np.ndarray:
    """Band copy above the cutoff of ``dec`` with ``mode`` taken from ``ref``."""
    spec, true = stft(dec, N_FFT, HOP), stft(ref, N_FFT, HOP)
    bins = spec.shape[-2]
    c = detect_cutoff(np.abs(spec[:, : N_FFT // 2]) ** 2)
    if c >= N_FFT // 2 - 24:
        return dec.copy()
    src = copy_phase_sources(c, bins, 64)[c:]
    fine = spec[:, src, :]
    out = spec.copy()
    if mode == "mag":
        out[:, c:, :] = np.abs(true[:, c:, :]) * fine / np.maximum(np.abs(fine), 1e-12)
        return istft(out, N_FFT, HOP, dec.shape[-1])
    if mode == "erb":  # levels in the ERB bands of nets.BandGenerator, gains interpolated across bins
        from mp3fix.train.nets import band_matrices

        analysis, synthesis = (m.numpy().astype(np.float64) for m in band_matrices(N_FFT // 2, SR, N_FFT, erb_bands))
        p_true, p_fine = np.abs(true[:, : N_FFT // 2]) ** 2, np.abs(spec[:, src_all(c)]) ** 2
        d = 0.5 * (np.log(np.einsum("kf,cft->ckt", analysis, p_true) + 1e-20)
                   - np.log(np.einsum("kf,cft->ckt", analysis, p_fine) + 1e-20))
        g = np.exp(np.einsum("fk,ckt->cft", synthesis, d))
        out[:, c : N_FFT // 2, :] = fine[:, : N_FFT // 2 - c] * g[:, c:]
        return istft(out, N_FFT, HOP, dec.shape[-1])
    band = third_octaves(c, bins)
    gain = np.empty(fine.shape, np.float32)
    for b in np.unique(band):
        sel = band == b
        pt = (np.abs(true[:, c:, :][:, sel]) ** 2).mean(axis=1, keepdims=True)
        pf = (np.abs(fine[:, sel]) ** 2).mean(axis=1, keepdims=True)
        if mode == "slow":
            pt, pf = uniform_filter1d(pt, SMOOTH, axis=-1), uniform_filter1d(pf, SMOOTH, axis=-1)
        elif mode == "static":
            pt, pf = pt.mean(axis=-1, keepdims=True), pf.mean(axis=-1, keepdims=True)
        gain[:, sel] = np.sqrt(pt / np.maximum(pf, 1e-20))
    out[:, c:, :] = fine * gain
    return istft(out, N_FFT, HOP, dec.shape[-1])


def below_oracle(dec: np.ndarray, ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """mp3fix's restoration above the cutoff of ``dec``, the original ``ref`` below it."""
    c = detect_cutoff(np.abs(stft(dec, N_FFT, HOP)[:, : N_FFT // 2]) ** 2)
    if c >= N_FFT // 2 - 24:  # nothing restored: nothing to mend
        return ours
    below = (np.arange(N_FFT // 2 + 1) < c)[None, :, None]
    return istft(np.where(below, stft(ref, N_FFT, HOP), stft(ours, N_FFT, HOP)), N_FFT, HOP, dec.shape[-1])


def src_all(c: int) -> np.ndarray:
    """Band copy's source bin for every bin (the intact band maps to itself)."""
    return copy_phase_sources(c, N_FFT // 2, 64)


def fast_levels(x: np.ndarray, cutoff: int) -> tuple[np.ndarray, np.ndarray]:
    """Band levels (dB) of the mono mix above ``cutoff``, (bands, frames), and their fast changes."""
    p = np.abs(stft(x.mean(axis=0), N_FFT, HOP)) ** 2
    band = third_octaves(cutoff, p.shape[0])
    f_hi = (cutoff + np.arange(band.size)) * SR / N_FFT
    levels = np.array([10 * np.log10(p[cutoff:][band == b].mean(axis=0) + 1e-10)
                       for b in np.unique(band) if f_hi[band == b].max() <= 20000])
    return levels, levels - uniform_filter1d(levels, SMOOTH, axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--split", default="val", choices=["val", "test", "train"])
    ap.add_argument("--tracks", type=int, default=None)
    ap.add_argument("--excerpts", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--erb-bands", type=int, default=64, help="bands of the ERB row")
    ap.add_argument("--only", nargs="+", choices=[*ORACLES, MODEL_LEVELS, MODEL_ERB, BELOW], default=None,
                    help="rows to compute (default: all)")
    a = ap.parse_args()
    rows = a.only or [*ORACLES, MODEL_LEVELS, MODEL_ERB, BELOW]
    tracks = read_splits(a.data)[a.split][: a.tracks]
    restorer = Restorer(a.model, device="cpu", threads=a.threads)
    vq = Visqol()
    names = ["mp3fix", *rows]
    gains: dict[int, dict[str, list[float]]] = {s.kbps: {n: [] for n in names} for s in SETTINGS}
    follow: dict[int, dict[str, list[tuple[float, float]]]] = {
        s.kbps: {"band copy": [], "mp3fix": []} for s in SETTINGS}
    t0 = time.time()
    clips = [r for p in tracks for r in excerpts(p, a.seconds, a.excerpts)]
    for i, ref in enumerate(clips):
        for s in SETTINGS:
            with tempfile.TemporaryDirectory() as tmp:
                mp3 = Path(tmp) / "x.mp3"
                encode_mp3(ref, SR, s, mp3)
                dec, _ = decode(mp3, SR)
            n = min(dec.shape[1], ref.shape[1])
            dec, r = dec[:, :n], ref[:, :n]
            bc = band_copy(dec)
            base = vq(r, bc)
            ours = restorer.restore(dec, SR, seed=0)[0]
            gains[s.kbps]["mp3fix"].append(vq(r, ours) - base)
            for name in rows:
                if name == BELOW:
                    y = below_oracle(dec, ours, r)
                elif name in (MODEL_LEVELS, MODEL_ERB):
                    y = oracle(dec, ours, "frame" if name == MODEL_LEVELS else "erb", a.erb_bands)
                else:
                    y = oracle(dec, r, ORACLES[name])
                gains[s.kbps][name].append(vq(r, y) - base)
            cut = detect_cutoff(np.abs(stft(dec, N_FFT, HOP)[:, : N_FFT // 2]) ** 2)
            if cut >= N_FFT // 2 - 24:
                continue
            levels, orig = fast_levels(r, cut)
            active = levels.max(axis=-1) > levels.max() - 50
            for name, y in (("band copy", bc), ("mp3fix", ours)):
                other = fast_levels(y, cut)[1]
                for b in np.nonzero(active)[0]:
                    o, p = orig[b], other[b]
                    if o.std() > 0 and p.std() > 0:
                        follow[s.kbps][name].append((float(np.corrcoef(o, p)[0, 1]), float(p.std() / o.std())))
        print(f"excerpt {i + 1}/{len(clips)} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)

    kb = [s.kbps for s in SETTINGS]
    print(f"\n{len(tracks)} {a.split} tracks x {a.excerpts} x {a.seconds:.0f} s: ViSQOL minus band copy "
          "(mean +- standard error over excerpts)\n")
    print("| above the cutoff | " + " | ".join(f"{k} kbit/s" for k in kb) + " |")
    print("|---|" + "---|" * len(kb))
    for name in names:
        cells = []
        for k in kb:
            d = np.array(gains[k][name])
            cells.append(f"{d.mean():+.3f} +- {d.std(ddof=1) / np.sqrt(len(d)):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nfast band-level changes (< 0.5 s) against the original's: correlation, median std ratio\n")
    print("| system | " + " | ".join(f"{k} kbit/s" for k in kb) + " |")
    print("|---|" + "---|" * len(kb))
    for name in ("band copy", "mp3fix"):
        cells = []
        for k in kb:
            v = np.array(follow[k][name])
            cells.append(f"{v[:, 0].mean():.2f}, {np.median(v[:, 1]):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
