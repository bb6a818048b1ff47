"""Quality benchmark on held-out tracks: ViSQOL (audio mode) and LSD.

    python benchmarks/quality.py [--data data/pairs] [--tracks 15] [--seconds 10] [--excerpts 1]

For each held-out test track (``data/pairs/splits.json``, made by
``python -m mp3fix.train.dataset``), a stereo excerpt is encoded with LAME
(ffmpeg's libmp3lame) at 16, 32 and 64 kbit/s at the sample rates the ``lame``
command line picks (8, 16, 24 kHz; ``--kbps`` for others), decoded by mp3fix's decoder, and scored
against the original for: the MP3 itself, the two non-learned baselines, and
mp3fix (seed 0). ``--excerpts N`` scores N excerpts per track, centred at
1/(N+1), 2/(N+1), ... of it (N = 1: the middle), for tighter estimates; the
paired differences are then averaged per track first, so the standard error
is over tracks, not over correlated excerpts of one track. ``spread`` is the LSD between two mp3fix variants (seeds 0
and 1) above the cutoff; below it the variants are identical by construction.
mp3fix is told the band LAME keeps at each setting, as ``mp3fix restore`` reads
it from a file's bitrate and rate (``mp3fix.codec``), and from 80 kbit/s up leaves
a passage alone where the cliff is the recording's own edge; ``--no-guard``
restores everywhere. The baselines are not told. ``--highs DB`` restores as
``mp3fix restore --highs DB`` does (the restored band DB louder or quieter).
Prints a markdown table; ``--json`` writes the numbers, ``--pictures DIR``
writes before/after/variant spectrograms.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import band_copy, noise_fill  # noqa: E402
from splits import read_splits  # noqa: E402

from mp3fix.audio import decode  # noqa: E402
from mp3fix.codec import encoder_band_hz, encoder_reach_hz  # noqa: E402
from mp3fix.restore import Restorer  # noqa: E402
from mp3fix.spectral import detect_cutoff, stft  # noqa: E402
from mp3fix.train.dataset import CONFIGS, EncoderConfig, encode_mp3  # noqa: E402

SR = 44100
# the rate the lame command line resamples 44.1 kHz stereo to at each bitrate
# (measured for the data set's stereo settings; from 112 kbit/s on it keeps 44.1 kHz)
LAME_RATE = {c.kbps: c.rate for c in CONFIGS if c.channels == 2}


def setting(kbps: int) -> EncoderConfig:
    return EncoderConfig(kbps, 2, LAME_RATE.get(kbps, 44100 if kbps >= 112 else 32000), 1.0)


SETTINGS = [setting(k) for k in (16, 32, 64)]
# and mono (from 96 kbit/s on 44.1 kHz)
LAME_RATE_MONO = {c.kbps: c.rate for c in CONFIGS if c.channels == 1}


def mono_setting(kbps: int) -> EncoderConfig:
    return EncoderConfig(kbps, 1, LAME_RATE_MONO.get(kbps, 44100), 1.0)


def twin_at(ref: np.ndarray, kbps: int, mono: bool = False) -> tuple[np.ndarray, np.ndarray, EncoderConfig]:
    """(decoded MP3, original, setting) of one stereo excerpt at ``kbps``, as the
    lame command line encodes it: stereo, or with ``mono`` a mono MP3 of its
    mid, scored against that mid."""
    s = mono_setting(kbps) if mono else setting(kbps)
    dec, orig = mp3_twin(ref.mean(axis=0, keepdims=True) if mono else ref, s)
    return dec, orig, s


def mp3_twin(ref: np.ndarray, s: EncoderConfig) -> tuple[np.ndarray, np.ndarray]:
    """(decoded MP3, original) of one excerpt at ``SR``: encoded with LAME at
    setting ``s``, decoded as the runtime decodes, both cut to one length."""
    with tempfile.TemporaryDirectory() as tmp:
        mp3 = Path(tmp) / "x.mp3"
        encode_mp3(ref, SR, s, mp3)
        dec, _ = decode(mp3, SR)
    n = min(dec.shape[1], ref.shape[1])
    return dec[:, :n], ref[:, :n]


def lsd(ref: np.ndarray, deg: np.ndarray, n_fft: int = 2048, hop: int = 512) -> float:
    """Log-spectral distance (dB): per-frame RMS over bins of the dB difference, mean over frames."""
    a = np.abs(stft(ref, n_fft, hop)) ** 2
    b = np.abs(stft(deg, n_fft, hop)) ** 2
    d = 10 * np.log10(a + 1e-10) - 10 * np.log10(b + 1e-10)
    return float(np.sqrt((d**2).mean(axis=-2)).mean())


def band_lsd(a: np.ndarray, b: np.ndarray, lo_bin: int, n_fft: int = 1024, hop: int = 512) -> float:
    pa = np.abs(stft(a, n_fft, hop))[:, lo_bin : n_fft // 2] ** 2
    pb = np.abs(stft(b, n_fft, hop))[:, lo_bin : n_fft // 2] ** 2
    d = 10 * np.log10(pa + 1e-10) - 10 * np.log10(pb + 1e-10)
    return float(np.sqrt((d**2).mean(axis=-2)).mean())


class Visqol:
    def __init__(self) -> None:
        import logging

        from visqol import VisqolApi

        logging.getLogger("visqol").setLevel(logging.ERROR)
        self.api = VisqolApi()
        self.api.create(mode="audio")

    def __call__(self, ref: np.ndarray, deg: np.ndarray) -> float:
        r = resample_poly(ref.mean(axis=0), 160, 147).astype(np.float64)
        d = resample_poly(deg.mean(axis=0), 160, 147).astype(np.float64)
        return float(self.api.measure_from_arrays(r, d, 48000).moslqo)


def excerpts(path: str, seconds: float, count: int = 1) -> list[np.ndarray]:
    """``count`` stereo excerpts of ``seconds``, centred at k/(count+1) of the track."""
    x, _ = decode(path, SR)
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    n = int(seconds * SR)
    out = []
    for k in range(1, count + 1):
        start = min(max(0, x.shape[1] * k // (count + 1) - n // 2), max(0, x.shape[1] - n))
        out.append(x[:, start : start + n])
    return out


def spectrogram_png(signals: dict[str, np.ndarray], path: Path, seconds: float = 6.0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(signals), figsize=(3.2 * len(signals), 3.2), sharey=True)
    for ax, (name, sig) in zip(axes, signals.items(), strict=False):
        s = np.abs(stft(sig[0, : int(seconds * SR)], 1024, 256))
        ax.imshow(20 * np.log10(s + 1e-6), origin="lower", aspect="auto", vmin=-100, vmax=10, cmap="magma",
                  extent=[0, s.shape[1] * 256 / SR, 0, SR / 2000])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("s")
    axes[0].set_ylabel("kHz")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    ap.add_argument("--split", default="test", choices=["test", "val"],
                    help="held-out test tracks (default) or the validation tracks, for choosing checkpoints")
    ap.add_argument("--tracks", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--excerpts", type=int, default=1, help="excerpts per track (default 1, the middle)")
    ap.add_argument("--kbps", default="16,32,64",
                    help="bitrates to encode at, comma-separated (default 16,32,64: the model card's table)")
    ap.add_argument("--no-visqol", action="store_true", help="LSD only (fast)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--pictures", type=Path)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--highs", type=float, default=0.0, metavar="DB",
                    help="mp3fix's restored band DB louder (negative: quieter), as `restore --highs DB`")
    ap.add_argument("--no-guard", action="store_true",
                    help="restore even where the cliff is the recording's own edge (mp3fix.codec)")
    a = ap.parse_args()
    tracks = read_splits(a.data)[a.split][: a.tracks]
    settings = [setting(int(k)) for k in a.kbps.split(",")]
    restorer = Restorer(a.model, device="cpu", threads=a.threads, highs_db=a.highs)
    vq = None if a.no_visqol else Visqol()
    systems = ["mp3", "noise fill", "band copy", "mp3fix"]
    scores: dict[str, dict[str, dict[str, list[float]]]] = {
        f"{s.kbps}": {m: {k: [] for k in systems} for m in ("visqol", "lsd")} for s in settings
    }
    spread: dict[str, list[float]] = {f"{s.kbps}": [] for s in settings}
    rows: list[dict] = []  # one per track, excerpt and bitrate
    t0 = time.time()
    for ti, (path, ei, ref) in enumerate((p, ei, r) for p in tracks
                                         for ei, r in enumerate(excerpts(p, a.seconds, a.excerpts))):
        for s in settings:
            dec, r = mp3_twin(ref, s)
            # what the runtime knows from an MP3 file: the band its encoder keeps
            band = None if a.no_guard else encoder_band_hz("mp3", s.kbps, s.channels, s.rate)
            reach = None if a.no_guard else encoder_reach_hz("mp3", s.kbps, s.channels, s.rate)
            v0, v1 = restorer.restore(dec, SR, seed=0, variants=2, encoder_band_hz=band, encoder_reach_hz=reach)
            outs = {"mp3": dec, "noise fill": noise_fill(dec), "band copy": band_copy(dec), "mp3fix": v0}
            key = f"{s.kbps}"
            row: dict = {"track": Path(path).name, "excerpt": ei, "kbps": s.kbps, "lsd": {}, "visqol": {}}
            for name, y in outs.items():
                row["lsd"][name] = lsd(r, y)
                scores[key]["lsd"][name].append(row["lsd"][name])
                if vq is not None:
                    row["visqol"][name] = vq(r, y)
                    scores[key]["visqol"][name].append(row["visqol"][name])
            cut = detect_cutoff(np.abs(stft(dec, 1024, 512)[:, :512]) ** 2)
            spread[key].append(band_lsd(v0, v1, cut) if cut < 512 else 0.0)
            rows.append(row)
            if a.pictures and ti == 0:
                a.pictures.mkdir(parents=True, exist_ok=True)
                spectrogram_png({"original": r, f"MP3 {s.kbps} kbit/s": dec, "mp3fix seed 0": v0,
                                 "mp3fix seed 1": v1}, a.pictures / f"spectrogram-{s.kbps}k.png")
        print(f"excerpt {ti + 1}/{len(tracks) * a.excerpts} done ({time.time() - t0:.0f}s)",
              file=sys.stderr, flush=True)

    def mean(v: list[float]) -> str:
        return f"{np.mean(v):.3f}" if v else "-"

    kind = "held-out" if a.split == "test" else "validation"
    print(f"\n{len(tracks)} {kind} tracks x {a.excerpts} x {a.seconds:.0f} s, stereo; "
          "ViSQOL audio mode (higher is better), LSD in dB (lower is better)\n")
    print("| bitrate | metric | " + " | ".join(systems) + " |")
    print("|---|---|" + "---|" * len(systems))
    for key in scores:
        for metric in ("visqol", "lsd"):
            if metric == "visqol" and vq is None:
                continue
            print(f"| {key} kbit/s | {metric} | " + " | ".join(mean(scores[key][metric][k]) for k in systems) + " |")
    paired: dict[str, dict[str, float]] = {}
    if vq is not None:
        # per-track ViSQOL differences: how sure is the gap to the better baseline?
        print("\nmp3fix minus band copy, ViSQOL, per track (mean, standard error, tracks won):")
        for key in scores:
            diff = np.array(scores[key]["visqol"]["mp3fix"]) - np.array(scores[key]["visqol"]["band copy"])
            d = diff.reshape(len(tracks), a.excerpts).mean(axis=1)  # per track
            se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
            paired[key] = {"mean": float(d.mean()), "se": se, "won": int((d > 0).sum()), "tracks": len(d)}
            print(f"  {key} kbit/s: {d.mean():+.3f} +/- {se:.3f}, {int((d > 0).sum())}/{len(d)} tracks")
    if vq is not None:
        worse = {k: sum(r["visqol"][k] < r["visqol"]["mp3"] - 0.1 for r in rows) for k in systems[1:]}
        print(f"\ncases (excerpt x bitrate, of {len(rows)}) more than 0.1 ViSQOL below the MP3: "
              + ", ".join(f"{k} {n}" for k, n in worse.items()))
    print("\nvariant spread (LSD between seeds 0 and 1 above the cutoff, dB): "
          + ", ".join(f"{k} kbit/s {mean(v)}" for k, v in spread.items()))
    if a.json:
        summary = {k: {m: {s: float(np.mean(v)) for s, v in d.items() if v} for m, d in mv.items()}
                   for k, mv in scores.items()}
        a.json.write_text(json.dumps({"tracks": len(tracks), "excerpts": a.excerpts, "seconds": a.seconds,
                                      "highs": a.highs, "scores": summary, "rows": rows,
                                      "spread": {k: float(np.mean(v)) for k, v in spread.items()},
                                      "mp3fix_minus_band_copy_visqol": paired}, indent=1))


if __name__ == "__main__":
    main()
