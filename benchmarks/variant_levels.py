"""Do the model's variants differ in how loud they make the highs?

    python benchmarks/variant_levels.py [--variants 4] [--kbps 16,32] \
        [--highs q0.json q-6.json q-12.json q-18.json q-24.json]

The held-out excerpts of ``quality.py --excerpts 3`` (same tracks, same
excerpts, same LAME settings) are restored with ``--variants`` different z.
For each case (excerpt x bitrate) it measures, above the MP3's cutoff, the
level of the restored band (mean power, dB) of every variant and of the
original, and prints per bitrate:

- how far apart the variants are in level over the whole excerpt (standard
  deviation over variants, dB) and frame by frame (the same per frame,
  averaged over frames);
- how far the first variant's level is from the original's (RMS over cases,
  dB), and how far the variants spread compared with that;
- with ``--highs`` (``quality.py --json`` runs at several ``--highs`` levels,
  the first at 0, as ``benchmarks/highs.py`` takes them): the correlation
  over cases of the frame-by-frame spread with mp3fix's ViSQOL minus the
  MP3's and with the level that scores best on the case, i.e. whether the
  spread could tell which restorations to turn down;
- always: the correlation over cases of the whole-excerpt spread with the
  size of the first variant's level error (does the spread know when the
  model is unsure of the level?);
- with ``--visqol``: the ViSQOL of the first variant, of the best variant
  chosen per file (track x bitrate, mean over its excerpts; an upper bound on
  picking by ear, as ``highs.py``'s per-file level), and the files more than
  0.1 below the MP3 with each.

Model card items 23 and 24 (a model whose sidecar has ``z_global_channels``
draws one level per variant, ``train.py --level-z``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from highs import BELOW, load  # noqa: E402
from quality import SR, Visqol, excerpts, mp3_twin, setting  # noqa: E402
from splits import read_splits  # noqa: E402

from mp3fix.codec import encoder_band_hz, encoder_reach_hz  # noqa: E402
from mp3fix.restore import Restorer  # noqa: E402
from mp3fix.spectral import detect_cutoff, stft  # noqa: E402

N_FFT, HOP = 1024, 512


def band_levels(signals: list[np.ndarray], cut: int) -> np.ndarray:
    """(len(signals), frames) mean power (dB) of each mono mix from bin ``cut`` up."""
    out = []
    for x in signals:
        p = np.abs(stft(x.mean(axis=0), N_FFT, HOP)[cut : N_FFT // 2]) ** 2
        out.append(10 * np.log10(p.mean(axis=0) + 1e-10))
    return np.stack(out)


def spreads(levels: np.ndarray) -> tuple[float, float]:
    """(spread of the whole-excerpt level, mean per-frame spread) over variants,
    dB, from (variants, frames) levels; frames where every variant is silent
    are left out of the per-frame figure."""
    total = 10 * np.log10(np.mean(10 ** (levels / 10), axis=1))
    live = levels.max(axis=0) > -90
    per_frame = float(levels[:, live].std(axis=0).mean()) if live.any() else 0.0
    return float(total.std()), per_frame


def corr(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and np.std(a) > 0 and np.std(b) > 0 else float("nan")


def per_file(rows: list[dict]) -> tuple[float, float, tuple[int, int]]:
    """From ``--visqol`` rows of one bitrate: the first variant's mean ViSQOL,
    the mean with the best variant chosen per file (track; mean over its
    excerpts), and the files more than ``BELOW`` under the MP3 with each."""
    files: dict[str, list[dict]] = {}
    for r in rows:
        files.setdefault(r["track"], []).append(r)
    first, best, below = [], [], [0, 0]
    for rs in files.values():
        means = np.mean([r["visqol"] for r in rs], axis=0)  # per variant, over the file's excerpts
        mp3 = float(np.mean([r["visqol_mp3"] for r in rs]))
        k = int(np.argmax(means))
        first += [r["visqol"][0] for r in rs]
        best += [r["visqol"][k] for r in rs]
        below[0] += int(means[0] < mp3 - BELOW)
        below[1] += int(means[k] < mp3 - BELOW)
    return float(np.mean(first)), float(np.mean(best)), (below[0], below[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--tracks", type=int, default=15)
    ap.add_argument("--excerpts", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--kbps", default="16,32")
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--highs", type=Path, nargs="*", default=[],
                    help="quality.py --json runs at several --highs levels, the first at 0")
    ap.add_argument("--visqol", action="store_true",
                    help="also score the MP3 and every variant with ViSQOL (first, best per file, files below)")
    ap.add_argument("--json", type=Path, help="write the per-case rows here")
    a = ap.parse_args()
    vq = Visqol() if a.visqol else None
    tracks = read_splits(a.data)["test"][: a.tracks]
    restorer = Restorer(a.model, device="cpu", threads=a.threads)
    runs = {str(json.loads(p.read_text()).get("highs", 0.0)): load(p) for p in a.highs}
    rows = []
    t0 = time.time()
    for path in tracks:
        for ei, ref in enumerate(excerpts(path, a.seconds, a.excerpts)):
            for kbps in (int(k) for k in a.kbps.split(",")):
                s = setting(kbps)
                dec, r = mp3_twin(ref, s)
                cut = detect_cutoff(np.abs(stft(dec.mean(axis=0), N_FFT, HOP)[: N_FFT // 2]) ** 2)
                if cut >= N_FFT // 2 - 8:
                    continue  # nothing restored (a full-band or silent excerpt)
                vs = restorer.restore(dec, SR, seed=0, variants=a.variants,
                                      encoder_band_hz=encoder_band_hz("mp3", s.kbps, s.channels, s.rate),
                                      encoder_reach_hz=encoder_reach_hz("mp3", s.kbps, s.channels, s.rate))
                lv = band_levels(vs, cut)
                total, per_frame = spreads(lv)
                orig = band_levels([r[:, : vs[0].shape[1]]], cut)[0]
                err = 10 * np.log10(np.mean(10 ** (lv[0] / 10))) - 10 * np.log10(np.mean(10 ** (orig / 10)))
                row = {"track": Path(path).name, "excerpt": ei, "kbps": kbps, "total": total,
                       "per_frame": per_frame, "error": float(err)}
                if vq is not None:
                    ref_cut = r[:, : vs[0].shape[1]]
                    row["visqol_mp3"] = vq(ref_cut, dec[:, : vs[0].shape[1]])
                    row["visqol"] = [vq(ref_cut, v) for v in vs]
                rows.append(row)
        print(f"{Path(path).name} done ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)

    print(f"\n{a.variants} variants, {len(tracks)} held-out tracks x {a.excerpts} excerpts")
    if a.json:
        a.json.write_text(json.dumps({"variants": a.variants, "rows": rows}, indent=1))
    head = ("| kbit/s | cases | level spread, whole excerpt (dB) | per frame (dB) | level error vs original, "
            "RMS (dB) | r(spread, abs error) |")
    if vq is not None:
        head += " ViSQOL first | best per file | files below MP3, first | best |"
    if runs:
        head += " r(spread, mp3fix - MP3) | r(spread, best --highs) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for kbps in sorted({r["kbps"] for r in rows}):
        rs = [r for r in rows if r["kbps"] == kbps]
        line = (f"| {kbps} | {len(rs)} | {np.mean([r['total'] for r in rs]):.3f} "
                f"(max {max(r['total'] for r in rs):.3f}) | {np.mean([r['per_frame'] for r in rs]):.2f} | "
                f"{np.sqrt(np.mean([r['error'] ** 2 for r in rs])):.1f} | "
                f"{corr([r['total'] for r in rs], [abs(r['error']) for r in rs]):+.2f} |")
        if vq is not None:
            first, best, below = per_file(rs)
            line += f" {first:.3f} | {best:.3f} | {below[0]} | {below[1]} |"
        if runs:
            levels = list(runs)
            keyed = [(r, (r["track"], r["excerpt"], kbps)) for r in rs]
            keyed = [(r, k) for r, k in keyed if all(k in run for run in runs.values())]
            gain = [runs[levels[0]][k]["visqol"]["mp3fix"] - runs[levels[0]][k]["visqol"]["mp3"] for _, k in keyed]
            best = [float(max(levels, key=lambda h, k=k: runs[h][k]["visqol"]["mp3fix"])) for _, k in keyed]
            spread = [r["per_frame"] for r, _ in keyed]
            line += f" {corr(spread, gain):+.2f} | {corr(spread, best):+.2f} |"
        print(line)


if __name__ == "__main__":
    main()
