"""Does mp3fix leave the band the MP3 kept alone? Per case, under the MP3's cutoff.

    python benchmarks/intact.py [--kbps 16,32,64] [--tracks 15] [--excerpts 3] [--seconds 10]
        [--split test] [--mono] [--model PATH] [--json F]

The same excerpts as ``quality.py --excerpts 3`` (held-out tracks, stereo, LAME
at the bitrates' default sample rates), restored the same way (seed 0, with
the encoder's band and guards). The cutoff is the runtime's own: the lowest
it found over the excerpt's chunks (a quiet passage can have a lower one than
the rest). The restoration is compared with the MP3 *under* it, in the band
the MP3 kept in every chunk: up to 12 runtime bins (0.5 kHz) under that
cutoff, below the ramp where the restored band fades in. There mp3fix is
meant to change nothing but the encoder's dropouts in the 2.8 kHz just
under the cutoff (``restore --keep-mp3-band`` turns that filling off):

- ``LSD under``: the log-spectral distance to the original over the kept
  band only (per frame and channel, RMS over those bins, mean over frames),
  for the MP3 and for mp3fix;
- ``moved``: the 99th percentile of |mp3fix - MP3| in dB over the bins more
  than 2.8 kHz under the cutoff (those no pass of mp3fix may touch) and the
  frames within 60 dB of the loudest (resynthesis leaves about 0.0x dB);
- ``ViSQOL, under only``: ViSQOL of mp3fix under the cutoff with the MP3's
  own spectrum above it (no restored band), minus the MP3's ViSQOL: what the
  changes under the cutoff alone do to the score.

``--mono`` encodes a mono MP3 of each excerpt's mid at the sample rate the
``lame`` command line picks for it (as ``posthoc.py --mono``), scored
against that mid. Prints a table per bitrate and the cases where mp3fix is
worse than the MP3 under the cutoff (LSD more than 0.1 dB worse, or the
score more than 0.02 lower).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import SR, Visqol, excerpts, twin_at  # noqa: E402
from splits import read_splits  # noqa: E402

from mp3fix.codec import encoder_band_hz, encoder_reach_hz  # noqa: E402
from mp3fix.restore import Restorer  # noqa: E402
from mp3fix.spectral import istft, stft  # noqa: E402

N_FFT, HOP = 2048, 512
FILL_HZ = 64 * SR / 1024  # the most the dropout filling reaches under the cutoff (64 runtime bins)
# the restored band fades in over the 8 runtime bins under the cutoff (``mask_ramp_bins``), and the
# detector puts the cutoff up to 3 bins above the cliff's middle: the band the MP3 kept ends this far lower
EDGE_HZ = 12 * SR / 1024


def restore_and_cutoff(restorer: Restorer, dec: np.ndarray, **kwargs) -> tuple[np.ndarray, float]:
    """The restoration of ``dec`` (seed 0, one variant) and the lowest cutoff in
    Hz the runtime restored any of its chunks from (Nyquist where it restored
    none)."""
    cutoffs: list[int] = []
    prepare = restorer._prepare

    def recording(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        prep = prepare(*args, **kw)
        if prep is not None:
            cutoffs.append(prep.cutoff)
        return prep

    restorer._prepare = recording
    try:
        (y,) = restorer.restore(dec, SR, seed=0, variants=1, **kwargs)
    finally:
        restorer._prepare = prepare
    cfg = restorer.config
    return y, (min(cutoffs) * SR / cfg.n_fft if cutoffs else SR / 2)


def lsd_under(ref: np.ndarray, deg: np.ndarray, hz: float) -> float:
    """``quality.lsd`` restricted to the bins under ``hz`` (at least one)."""
    a = np.abs(stft(ref, N_FFT, HOP)) ** 2
    b = np.abs(stft(deg, N_FFT, HOP)) ** 2
    k = max(1, int(hz / SR * N_FFT))
    d = 10 * np.log10(a[..., :k, :] + 1e-10) - 10 * np.log10(b[..., :k, :] + 1e-10)
    return float(np.sqrt((d**2).mean(axis=-2)).mean())


def moved_db(mp3: np.ndarray, out: np.ndarray, hz: float, active_db: float = 60.0) -> float:
    """99th percentile of |out - mp3| (dB) over the bins under ``hz`` and the
    bins within ``active_db`` of the loudest of the MP3's (0 where there are none)."""
    k = int(hz / SR * N_FFT)
    if k < 1:
        return 0.0
    a = 10 * np.log10(np.abs(stft(mp3, N_FFT, HOP)[..., :k, :]) ** 2 + 1e-20)
    b = 10 * np.log10(np.abs(stft(out, N_FFT, HOP)[..., :k, :]) ** 2 + 1e-20)
    active = a > a.max() - active_db
    return float(np.percentile(np.abs(a - b)[active], 99)) if active.any() else 0.0


def under_only(mp3: np.ndarray, out: np.ndarray, hz: float) -> np.ndarray:
    """``out``'s spectrum under ``hz``, the MP3's above it."""
    f = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    spec = np.where((f < hz)[:, None], stft(out, N_FFT, HOP), stft(mp3, N_FFT, HOP))
    return istft(spec, N_FFT, HOP, mp3.shape[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--split", default="test", choices=["test", "val"])
    ap.add_argument("--tracks", type=int, default=15)
    ap.add_argument("--excerpts", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--kbps", default="16,32,64")
    ap.add_argument("--mono", action="store_true", help="mono MP3s of the excerpts' mid")
    ap.add_argument("--model", default=None)
    ap.add_argument("--no-visqol", action="store_true", help="LSD and moved only (fast)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    tracks = read_splits(a.data)[a.split][: a.tracks]
    restorer = Restorer(a.model, device="cpu", threads=1)
    vq = None if a.no_visqol else Visqol()
    kbps = [int(k) for k in a.kbps.split(",")]
    rows = []
    for i, path in enumerate(tracks):
        for ei, ref in enumerate(excerpts(path, a.seconds, a.excerpts)):
            for kb in kbps:
                dec, orig, s = twin_at(ref, kb, a.mono)
                band = encoder_band_hz("mp3", kb, s.channels, s.rate)
                reach = encoder_reach_hz("mp3", kb, s.channels, s.rate)
                y, hz = restore_and_cutoff(restorer, dec, encoder_band_hz=band, encoder_reach_hz=reach)
                hz -= EDGE_HZ
                row = {"track": Path(path).name, "excerpt": ei, "kbps": kb, "under_hz": hz,
                       "lsd_under": {"mp3": lsd_under(orig, dec, hz), "mp3fix": lsd_under(orig, y, hz)},
                       "moved_db": moved_db(dec, y, hz - FILL_HZ)}
                if vq is not None:
                    row["visqol"] = {"mp3": vq(orig, dec), "under only": vq(orig, under_only(dec, y, hz))}
                rows.append(row)
        print(f"track {i + 1}/{len(tracks)} done", file=sys.stderr, flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    layout = "mono" if a.mono else "stereo"
    print(f"\n{len(tracks)} {a.split} tracks x {a.excerpts} x {a.seconds:g} s, {layout}, seed 0\n")
    print("| kbit/s | cases | LSD under the cutoff, MP3 / mp3fix (dB) | worse by > 0.1 dB | moved, 99th pct "
          "(max) dB | ViSQOL, MP3 / under only | lower by > 0.02 |")
    print("|---|---|---|---|---|---|---|")
    worse = []
    for kb in kbps:
        rr = [r for r in rows if r["kbps"] == kb]
        lm = np.mean([r["lsd_under"]["mp3"] for r in rr])
        lf = np.mean([r["lsd_under"]["mp3fix"] for r in rr])
        n_lsd = sum(r["lsd_under"]["mp3fix"] > r["lsd_under"]["mp3"] + 0.1 for r in rr)
        mv = [r["moved_db"] for r in rr]
        cells = f"| {kb} | {len(rr)} | {lm:.2f} / {lf:.2f} | {n_lsd} | {np.mean(mv):.3f} ({max(mv):.3f}) |"
        if vq is not None:
            vm = np.mean([r["visqol"]["mp3"] for r in rr])
            vu = np.mean([r["visqol"]["under only"] for r in rr])
            n_vq = sum(r["visqol"]["under only"] < r["visqol"]["mp3"] - 0.02 for r in rr)
            cells += f" {vm:.3f} / {vu:.3f} | {n_vq} |"
        else:
            cells += " - | - |"
        print(cells)
        for r in rr:
            bad_lsd = r["lsd_under"]["mp3fix"] > r["lsd_under"]["mp3"] + 0.1
            bad_vq = vq is not None and r["visqol"]["under only"] < r["visqol"]["mp3"] - 0.02
            if bad_lsd or bad_vq:
                worse.append(r)
    if worse:
        print("\nworse than the MP3 under the cutoff:")
        for r in worse:
            v = r.get("visqol", {})
            print(f"  {r['kbps']} kbit/s {r['track']} excerpt {r['excerpt']}: kept band to {r['under_hz']:.0f} Hz, "
                  f"LSD {r['lsd_under']['mp3']:.2f} -> {r['lsd_under']['mp3fix']:.2f} dB"
                  + (f", ViSQOL {v['mp3']:.3f} -> {v['under only']:.3f}" if v else ""))
    else:
        print("\nno case worse than the MP3 under the cutoff")


if __name__ == "__main__":
    main()
