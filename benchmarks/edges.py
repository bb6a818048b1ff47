"""What an MP3 says about where its original ended.

    python benchmarks/edges.py [--data data/pairs] [--excerpts 3] [--seconds 10] [--kbps 16,32,64]
        [--json F] [--from-json F]
    python benchmarks/edges.py --lame-grid

Two questions, on excerpts of every track of every split, each encoded with
LAME at the given bitrates (stereo, the lame command line's rates) and decoded
as ``quality.py`` does.

1. How high the frames of the MP3 reach, chunk by chunk as the runtime cuts a
   file (the shipped model's chunks, the frames inside each): the encoder's
   cliff scatters, but in some frames it keeps its whole band, and a
   recording that ends lower reaches no higher in any frame
   (``mp3fix.spectral.frame_reach``, ``mp3fix.restore.OwnEdge``). Prints, per
   bitrate, the reach as a share of the band LAME keeps over the chunks with
   a cliff, and the chunks the runtime's guard leaves alone as the
   recording's own edge. ``--lame-grid`` instead encodes one 20-s excerpt of
   every sixth training track and every validation track (full-band music
   but for one: none of them ends below 11 kHz) at bitrates, channel counts
   and rates from 48 to 256 kbit/s, and prints the same per setting, with
   the chunks the runtime's guards (cliff and reach) leave alone (with the
   MP3's cliff in kHz, and "own edge" where the original itself stops there,
   "MISS" where it goes on above it): where the reach cannot tell, full-band
   chunks fall below the share too.

2. At 16 and 32 kbit/s, whether the music the MP3 keeps says how bright the
   original is above the MP3's cutoff. The restored band's level is where
   ViSQOL decides between restorations (model card, "What limits it", item
   9), and part of the originals are lossy releases that stop at their own
   low-pass (10, 14, 17 kHz), far above the MP3's 3.7-5.5 kHz; if the MP3 told
   how bright the original is up there, a whole-file level could be predicted
   and applied. The original's level at 11.3-16 kHz relative to 2.0-2.8 kHz
   (the target) is predicted from the MP3's 1/6-octave spectrum shape between
   400 Hz and its cutoff, by ridge regression fitted with each track left out
   in turn (so no track predicts itself). Prints, per bitrate and split, the
   target's spread, the prediction's RMS error and the correlation, per
   excerpt and per track (excerpts averaged: a whole-file view), then the
   held-out excerpts that are dark up there one by one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import SR, excerpts, setting  # noqa: E402
from splits import read_splits  # noqa: E402

from mp3fix.audio import decode  # noqa: E402
from mp3fix.chunking import chunk_starts  # noqa: E402
from mp3fix.codec import (  # noqa: E402
    OWN_REACH_SHARE,
    REACH_IGNORED_ABOVE_SHARE,
    encoder_band_hz,
    encoder_reach_hz,
    lame_lowpass_hz,
)
from mp3fix.model import ModelConfig, load_config, resolve_model  # noqa: E402
from mp3fix.restore import OwnEdge  # noqa: E402
from mp3fix.spectral import detect_cutoff, frame_reach, interior_frames, stft  # noqa: E402
from mp3fix.train.dataset import EncoderConfig, encode_mp3  # noqa: E402

N_FFT = 1024
TARGET_BAND = (11314.0, 16000.0)  # the octave above where the 16/32 kbit/s restorations start to be decided
REF_BAND = (2000.0, 2828.0)
SHAPE_FROM_HZ = 400.0
SIXTH = 2 ** (1 / 6)


def band_db(power: np.ndarray, lo: float, hi: float, sr: int = SR, n_fft: int = N_FFT) -> float:
    """Mean level (dB) of a long-term power spectrum (bins,) over [lo, hi) Hz."""
    a, b = int(lo / sr * n_fft), max(int(hi / sr * n_fft), int(lo / sr * n_fft) + 1)
    return float(10 * np.log10(power[a:b].mean() + 1e-20))


def shape(power: np.ndarray, top_hz: float, n: int) -> np.ndarray:
    """The first ``n`` 1/6-octave levels from SHAPE_FROM_HZ up, relative to their
    mean (a level-free description of the spectrum's shape); NaN above ``top_hz``."""
    lo = SHAPE_FROM_HZ * SIXTH ** np.arange(n)
    v = np.array([band_db(power, f, f * SIXTH) if f * SIXTH <= top_hz else np.nan for f in lo])
    return v - np.nanmean(v)


def ridge_leave_one_group_out(x: np.ndarray, y: np.ndarray, groups: np.ndarray, lam: float = 30.0) -> np.ndarray:
    """Predictions of ``y`` from ``x`` (rows), each group's from a ridge fit on the others."""
    a = np.c_[x, np.ones(len(x))]
    reg = lam * np.eye(a.shape[1])
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    pred = np.empty(len(y))
    for g in np.unique(groups):
        out = groups == g
        w = np.linalg.solve(a[~out].T @ a[~out] + reg, a[~out].T @ y[~out])
        pred[out] = a[out] @ w
    return pred


def runtime_chunks(x: np.ndarray, segment: int, overlap: int, context: int) -> list[np.ndarray]:
    """The chunks the runtime cuts (C, n) audio into: each output region with
    ``context`` samples either side, zeros outside the audio (``mp3fix.chunking``)."""
    n, out = x.shape[-1], []
    for s in chunk_starts(n, segment, overlap):
        a, b = s - context, s + segment + context
        c = np.zeros((x.shape[0], b - a), np.float32)
        c[:, max(a, 0) - a : min(b, n) - a] = x[:, max(a, 0) : min(b, n)]
        out.append(c)
    return out


def chunk_reach(dec: np.ndarray, band_hz: float, reach_hz: float | None, cfg: ModelConfig) -> list[dict]:
    """Per runtime chunk of a decoded MP3: its cliff, its frames' reach (as the
    guard measures it, Hz) and whether the guard leaves it alone."""
    edge = OwnEdge.for_band(band_hz, reach_hz, SR, N_FFT)
    ignore = int(REACH_IGNORED_ABOVE_SHARE * band_hz / SR * N_FFT)  # as the guard does, also where it is off
    out = []
    for c in runtime_chunks(dec, cfg.segment, cfg.overlap, cfg.context):
        p = np.abs(stft(c, N_FFT, N_FFT // 2)[:, : N_FFT // 2]) ** 2
        p = p[..., interior_frames(c.shape[-1], N_FFT, N_FFT // 2)]
        cut = detect_cutoff(p, cfg.cutoff_drop_db, cfg.cutoff_width)
        out.append({"cutoff_hz": cut * SR / N_FFT, "reach_hz": frame_reach(p, ignore_above=ignore) * SR / N_FFT,
                    "full_band": bool(cut >= cfg.n_bins - cfg.full_band_margin_bins),
                    "left_alone": bool(edge.says_own(cut, p))})
    return out


def measure(data: Path, n_excerpts: int, seconds: float, kbps: list[int]) -> list[dict]:
    splits = read_splits(data)
    cfg = load_config(resolve_model(None))
    rows = []
    for split in ("train", "val", "test"):
        for i, path in enumerate(splits[split]):
            for ei, ref in enumerate(excerpts(path, seconds, n_excerpts)):
                p = np.abs(stft(ref, N_FFT, N_FFT // 2)[:, : N_FFT // 2]) ** 2
                lt = p.mean(axis=(0, 2))
                row = {"split": split, "track": Path(path).name, "excerpt": ei,
                       "edge_hz": float(detect_cutoff(p) * SR / N_FFT),
                       "target_db": band_db(lt, *TARGET_BAND) - band_db(lt, *REF_BAND), "mp3": {}}
                for kb in kbps:
                    with tempfile.TemporaryDirectory() as tmp:
                        mp3 = Path(tmp) / "x.mp3"
                        encode_mp3(ref, SR, setting(kb), mp3)
                        dec, _ = decode(mp3, SR)
                    q = np.abs(stft(dec, N_FFT, N_FFT // 2)[:, : N_FFT // 2]) ** 2
                    cut = float(detect_cutoff(q) * SR / N_FFT)
                    band = encoder_band_hz("mp3", kb, 2, setting(kb).rate)
                    reach = encoder_reach_hz("mp3", kb, 2, setting(kb).rate)
                    row["mp3"][str(kb)] = {"cutoff_hz": cut, "power": q.mean(axis=(0, 2)).tolist(), "band_hz": band,
                                           "chunks": chunk_reach(dec, band, reach, cfg)}
                rows.append(row)
            print(f"{split} {i + 1}/{len(splits[split])}", file=sys.stderr, flush=True)
    return rows


GRID = [EncoderConfig(kb, ch, rate, 1.0) for kb, ch, rates in (
    (56, 2, (22050, 24000, 32000, 44100)), (64, 2, (22050, 24000, 32000, 44100)),
    (56, 1, (22050, 24000)), (64, 1, (22050, 24000, 44100)), (48, 1, (32000, 44100)),
    (80, 2, (32000, 44100)), (96, 2, (32000, 44100, 48000)), (128, 2, (32000, 44100, 48000)),
    (160, 2, (44100,)), (192, 2, (44100,)), (256, 2, (44100,)), (96, 1, (44100,))) for rate in rates]


def lame_grid(data: Path, seconds: float = 20.0) -> None:
    splits = read_splits(data)
    tracks = splits["train"][::6] + splits["val"]
    cfg = load_config(resolve_model(None))
    stats: dict[EncoderConfig, list[float]] = {g: [] for g in GRID}
    alone: dict[EncoderConfig, list[str]] = {g: [] for g in GRID}
    for i, path in enumerate(tracks):
        ref = excerpts(path, seconds, 1)[0]
        # where each chunk of the original itself stops (Nyquist: full band)
        own = [detect_cutoff(np.abs(stft(c, N_FFT, N_FFT // 2)[:, : N_FFT // 2]) ** 2, cfg.cutoff_drop_db,
                             cfg.cutoff_width) * SR / N_FFT
               for c in runtime_chunks(ref, cfg.segment, cfg.overlap, cfg.context)]
        for g in GRID:
            with tempfile.TemporaryDirectory() as tmp:
                mp3 = Path(tmp) / "x.mp3"
                encode_mp3(ref, SR, g, mp3)
                dec, _ = decode(mp3, SR)
            band = encoder_band_hz("mp3", g.kbps, g.channels, g.rate)
            chunks = [(c, own[k] if k < len(own) else SR / 2)
                      for k, c in enumerate(chunk_reach(dec, band, encoder_reach_hz("mp3", g.kbps, g.channels, g.rate),
                                                        cfg)) if not c["full_band"]]
            stats[g] += [c["reach_hz"] / band for c, _ in chunks]
            # a chunk left alone whose original goes on above the MP3's cliff is a miss
            alone[g] += [f"{Path(path).stem} ({'own edge' if o <= c['cutoff_hz'] + 500 else 'MISS'} "
                         f"{c['cutoff_hz'] / 1000:.1f})" for c, o in chunks if c["left_alone"]]
        print(f"grid {i + 1}/{len(tracks)}", file=sys.stderr, flush=True)
    print(f"\nReach per runtime chunk with a cliff, {len(tracks)} tracks (one {seconds:g}-s excerpt each), "
          "as a share of the band LAME's table gives\n")
    print(f"| kbit/s | channels | rate | band kHz | reach tells | chunks | min | 1% | below {OWN_REACH_SHARE} "
          "| left alone by the guards |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for g, v in stats.items():
        a = np.array(v)
        tells = "yes" if encoder_reach_hz("mp3", g.kbps, g.channels, g.rate) else "no"
        band = encoder_band_hz("mp3", g.kbps, g.channels, g.rate)
        below = int((a < OWN_REACH_SHARE).sum())
        left = ", ".join(f"{t} x{alone[g].count(t)}" for t in sorted(set(alone[g]))) or "none"
        print(f"| {g.kbps} | {g.channels} | {g.rate} | {band / 1000:.2f} | {tells} | {len(a)} | {a.min():.3f} "
              f"| {np.percentile(a, 1):.3f} | {below} | {left} |")


def report_reach(rows: list[dict], kbps: list[int]) -> None:
    print("\n1. How high the frames reach, per runtime chunk with a cliff (reach / the band LAME keeps)\n")
    print("| kbit/s | band kHz | chunks | min | 1% | 5% | median | left alone as the recording's edge |")
    print("|---|---|---|---|---|---|---|---|")
    alone = []
    for kb in kbps:
        m = [(r, i, c) for r in rows for i, c in enumerate(r["mp3"][str(kb)]["chunks"]) if not c["full_band"]]
        band = rows[0]["mp3"][str(kb)]["band_hz"]
        share = np.array([c["reach_hz"] / band for _, _, c in m])
        left = [(kb, r, i, c) for r, i, c in m if c["left_alone"]]
        alone += left
        print(f"| {kb} | {band / 1000:.1f} | {len(m)} | {share.min():.3f} | {np.percentile(share, 1):.3f} "
              f"| {np.percentile(share, 5):.3f} | {np.median(share):.3f} | {len(left)} |")
    if alone:
        print("\n| kbit/s | split | track | excerpt | chunk | cliff kHz | reach kHz |")
        print("|---|---|---|---|---|---|---|")
        for kb, r, i, c in alone:
            print(f"| {kb} | {r['split']} | {r['track']} | {r['excerpt'] + 1} | {i + 1} | {c['cutoff_hz'] / 1000:.2f} "
                  f"| {c['reach_hz'] / 1000:.2f} |")


def report(rows: list[dict], kbps: list[int]) -> None:
    report_reach(rows, kbps)
    kbps = [kb for kb in kbps if lame_lowpass_hz(kb, 2, setting(kb).rate) < 8000]
    print(f"\n2. Target: the original's level at {TARGET_BAND[0] / 1000:.1f}-{TARGET_BAND[1] / 1000:.0f} kHz relative "
          f"to {REF_BAND[0] / 1000:.1f}-{REF_BAND[1] / 1000:.1f} kHz; predicted from the MP3's spectrum shape, "
          "each track left out of its own fit.\n")
    print("| kbit/s | split | per | n | target sd dB | RMS error dB | correlation |")
    print("|---|---|---|---|---|---|---|")
    detail = []
    for kb in kbps:
        top = 0.95 * lame_lowpass_hz(kb, 2, setting(kb).rate)
        # the excerpts whose MP3 has its cliff at the encoder's band (not far below it, not none)
        use = [r for r in rows if top <= r["mp3"][str(kb)]["cutoff_hz"] < 1.5 * top]
        mp3 = [r["mp3"][str(kb)] for r in use]
        n = int(np.floor(np.log(top / SHAPE_FROM_HZ) / np.log(SIXTH))) - 1
        x = np.nan_to_num(np.array([shape(np.array(m["power"]), top, n) for m in mp3]))
        y = np.array([r["target_db"] for r in use])
        tracks = np.array([f"{r['split']}/{r['track']}" for r in use])
        pred = ridge_leave_one_group_out(x, y, tracks)
        for split in ("train", "val", "test"):
            k = np.array([r["split"] == split for r in use])
            names = np.unique(tracks[k])
            ty = np.array([y[tracks == t].mean() for t in names])
            tp = np.array([pred[tracks == t].mean() for t in names])
            for per, a, b in (("excerpt", y[k], pred[k]), ("track", ty, tp)):
                print(f"| {kb} | {split} | {per} | {len(a)} | {a.std():.1f} | {np.sqrt(np.mean((a - b) ** 2)):.1f} "
                      f"| {np.corrcoef(a, b)[0, 1]:+.2f} |")
        for r, p, t in zip(use, pred, y, strict=True):
            if r["split"] == "test" and t < -30:
                detail.append((kb, r["track"], r["excerpt"], t, p))
    print("\nHeld-out excerpts whose original is 30 dB or more down up there:\n")
    print("| kbit/s | track | excerpt | original dB | predicted dB |")
    print("|---|---|---|---|---|")
    for kb, track, ei, t, p in detail:
        print(f"| {kb} | {track} | {ei + 1} | {t:.0f} | {p:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--excerpts", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--kbps", default="16,32,64")
    ap.add_argument("--json", type=Path, help="write the measurements here (and read them back with --from-json)")
    ap.add_argument("--from-json", type=Path, help="report on measurements written by --json")
    ap.add_argument("--lame-grid", action="store_true", help="the reach and the guards at settings of 48-256 kbit/s")
    a = ap.parse_args()
    if a.lame_grid:
        lame_grid(a.data)
        return
    kbps = [int(k) for k in a.kbps.split(",")]
    if a.from_json:
        rows = json.loads(a.from_json.read_text())
    else:
        rows = measure(a.data, a.excerpts, a.seconds, kbps)
        if a.json:
            a.json.write_text(json.dumps(rows))
    report(rows, kbps)


if __name__ == "__main__":
    main()
