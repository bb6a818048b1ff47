"""Twin originals that make the same MP3: what no restorer can tell apart.

    python benchmarks/twins.py [--split test] [--tracks 15] [--excerpts 1] [--seconds 10]
        [--kbps 16,24,32,48,64] [--highs 0,-12,-24] [--model PATH] [--no-visqol] [--json F]

"Never make a file worse" is not met by mp3fix at 16 to 64 kbit/s on two
kinds of held-out files: originals that end at 10 kHz themselves, and dark
passages whose highs lie far under the level full-band music has (model
card, "What limits it now", items 6, 7 and 28). This benchmark asks whether
any restorer could meet it. Each excerpt (the ``quality.py`` excerpts of the
held-out tracks) gets twins of its original that differ only where the
encoder does not listen, each encoded with LAME as ``quality.py`` encodes
(stereo, the ``lame`` command line's sample rates) and decoded as the
runtime decodes:

- ``full``: the original;
- ``ends 10k``: the original low-passed at 10 kHz (over a 500 Hz ramp), a
  recording that ends there, as the two held-out originals alBasrahM and
  turinItalyM do;
- ``dark``: the original ``--dark-db`` (15 dB) quieter above the band LAME
  keeps at that bitrate plus 1 kHz (``mp3fix.codec.lame_lowpass_hz``) or
  above the Nyquist frequency of the rate LAME resamples to, whichever is
  higher: a recording darker up there than its lower band suggests;
- ``nudged``: the original 0.001 dB louder, which changes nothing anyone can
  hear, for the scale of the differences that the encoder's own decisions
  make between two encodes (the null).

Prints, per bitrate and twin: the share of excerpts whose MP3 *file* is byte
for byte the ``full`` twin's; how far its decoded MP3 lies from the ``full``
twin's in the band the encoder keeps (LSD per bin, which the encoder's
holes dominate, and the RMS difference of third-octave band levels over
0.5-s blocks, which a restorer could read a recording's character from) and
how far mp3fix's restorations of the two lie apart (LSD over the whole band),
each next to the null's; how much quieter than the ``full`` twin the twin's
original is where it differs (from 1 kHz above its edge), and how much
quieter its restoration is there; then, with ViSQOL, for mp3fix at each ``--highs`` level (the
``restore --highs DB`` a listener can choose): the mean ViSQOL minus the
MP3's, each twin scored against its own original, its own MP3 and its own
restoration (seed 0, with the encoder's band and guards), and the cases more
than 0.1 below the MP3. Last, per bitrate, the excerpts where one level
leaves none of the three twins more than 0.1 below its MP3, and which
levels those are: where the twins' MP3s are the same, one output is all a
restorer can give them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import SR, Visqol, excerpts, lsd, setting  # noqa: E402
from splits import read_splits  # noqa: E402

from mp3fix.audio import decode  # noqa: E402
from mp3fix.codec import encoder_band_hz, encoder_reach_hz  # noqa: E402
from mp3fix.restore import Restorer  # noqa: E402
from mp3fix.spectral import istft, stft  # noqa: E402
from mp3fix.train.dataset import EncoderConfig, encode_mp3  # noqa: E402

N_FFT, HOP = 2048, 512
TWINS = ("full", "ends 10k", "dark")
BELOW = 0.1  # "worse than the MP3": more than this much ViSQOL below it


def shelved(x: np.ndarray, hz: float, db: float) -> np.ndarray:
    """``x`` with ``db`` decibels added above ``hz`` (a 500 Hz cosine ramp centred on it, in the STFT)."""
    f = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.clip((f - hz + 250.0) / 500.0, 0.0, 1.0))
    g = 10.0 ** (db * ramp / 20.0)
    return istft(stft(x, N_FFT, HOP) * g[None, :, None].astype(np.float32), N_FFT, HOP, x.shape[-1]).astype(np.float32)


def twin_edges(band_hz: float, rate: int) -> dict[str, float]:
    """Where each twin starts to differ from the original (the centre of its ramp)."""
    return {"ends 10k": 10000.0, "dark": max(band_hz + 1000.0, rate / 2), "nudged": 0.0}


def twin_originals(ref: np.ndarray, band_hz: float, rate: int, dark_db: float) -> dict[str, np.ndarray]:
    edge = twin_edges(band_hz, rate)
    return {
        "full": ref,
        "ends 10k": shelved(ref, edge["ends 10k"], -200.0),
        "dark": shelved(ref, edge["dark"], dark_db),
        "nudged": (ref * 10.0 ** (0.001 / 20.0)).astype(np.float32),
    }


def encode(ref: np.ndarray, s: EncoderConfig) -> tuple[np.ndarray, str]:
    """(decoded MP3 at ``SR``, sha256 of the MP3 file) of ``ref`` at setting ``s``."""
    with tempfile.TemporaryDirectory() as tmp:
        mp3 = Path(tmp) / "x.mp3"
        encode_mp3(ref, SR, s, mp3)
        digest = hashlib.sha256(mp3.read_bytes()).hexdigest()
        dec, _ = decode(mp3, SR)
    return dec, digest


def kept_band_lsd(a: np.ndarray, b: np.ndarray, band_hz: float) -> float:
    """LSD (dB) between ``a`` and ``b`` over the bins under ``band_hz``: ``intact.lsd_under``, but
    over the frames within 60 dB of ``a``'s loudest only, so that silence both share does not count
    as agreement."""
    top = int(band_hz * N_FFT / SR)
    pa = np.abs(stft(a, N_FFT, HOP)[:, 1:top]) ** 2
    pb = np.abs(stft(b, N_FFT, HOP)[:, 1:top]) ** 2
    d = 10 * np.log10(pa + 1e-10) - 10 * np.log10(pb + 1e-10)
    per_frame = np.sqrt((d**2).mean(axis=-2))
    level = 10 * np.log10(pa.sum(axis=-2) + 1e-10)
    keep = level > level.max() - 60.0
    return float(per_frame[keep].mean())


def band_levels(x: np.ndarray, top_hz: float, block: int = 43) -> np.ndarray:
    """Levels in dB of ``x`` (channels summed) in third-octave bands from 100 Hz to
    ``top_hz`` and blocks of ``block`` frames (0.5 s): the coarse picture a
    restorer could read a recording's character from, without the encoder's
    per-bin holes."""
    p = (np.abs(stft(x, N_FFT, HOP)) ** 2).sum(axis=0)
    edges = 100.0 * 2.0 ** (np.arange(0, 64) / 3.0)
    edges = edges[edges <= top_hz]
    f = np.arange(p.shape[0]) * SR / N_FFT
    rows = [p[(f >= lo) & (f < hi)].mean(axis=0) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    bands = np.stack(rows)
    n = bands.shape[1] // block * block
    blocks = bands[:, :n].reshape(bands.shape[0], -1, block).mean(axis=-1)
    return 10 * np.log10(blocks + 1e-10)


def levels_apart(a: np.ndarray, b: np.ndarray, top_hz: float) -> float:
    """RMS difference (dB) of :func:`band_levels` of ``a`` and ``b``, over the
    cells within 60 dB of ``b``'s loudest."""
    la, lb = band_levels(a, top_hz), band_levels(b, top_hz)
    keep = lb > lb.max() - 60.0
    return float(np.sqrt(((la - lb)[keep] ** 2).mean()))


def level_above(x: np.ndarray, hz: float) -> float:
    """Mean power (dB) of ``x`` above ``hz``, over the excerpt."""
    f = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    return float(10 * np.log10((np.abs(stft(x, N_FFT, HOP)[:, f > hz]) ** 2).mean() + 1e-12))


def one_level_serves(row: dict, levels: list[str]) -> list[str]:
    """The ``--highs`` levels that leave no twin of this row more than ``BELOW`` under its MP3."""
    return [lv for lv in levels if all(row["gain"][t][lv] >= -BELOW for t in TWINS)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    ap.add_argument("--split", default="test", choices=["test", "val"])
    ap.add_argument("--tracks", type=int, default=15)
    ap.add_argument("--excerpts", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--kbps", default="16,24,32,48,64")
    ap.add_argument("--highs", default="0,-12,-24", help="restore --highs levels to score, dB, comma-separated")
    ap.add_argument("--dark-db", type=float, default=-15.0)
    ap.add_argument("--no-visqol", action="store_true", help="only how the twins' MP3s and restorations differ")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    tracks = read_splits(a.data)[a.split][: a.tracks]
    kbps = [int(k) for k in a.kbps.split(",")]
    levels = [f"{float(h):g}" for h in a.highs.split(",")]
    restorers = {lv: Restorer(a.model, device="cpu", threads=a.threads, highs_db=float(lv)) for lv in levels}
    base = restorers.get("0") or Restorer(a.model, device="cpu", threads=a.threads)
    vq = None if a.no_visqol else Visqol()
    rows: list[dict] = []
    t0 = time.time()
    items = [(p, ei, r) for p in tracks for ei, r in enumerate(excerpts(p, a.seconds, a.excerpts))]
    for i, (path, ei, ref) in enumerate(items):
        for k in kbps:
            s = setting(k)
            band = encoder_band_hz("mp3", s.kbps, s.channels, s.rate)
            reach = encoder_reach_hz("mp3", s.kbps, s.channels, s.rate)
            guards = {"encoder_band_hz": band, "encoder_reach_hz": reach}
            row: dict = {"track": Path(path).name, "excerpt": ei, "kbps": k, "same_file": {}, "mp3_lsd": {},
                         "restored_lsd": {}, "mp3_levels": {}, "orig_above": {}, "restored_above": {},
                         "visqol_mp3": {}, "gain": {}}
            mp3s, restored, refs, digests = {}, {}, {}, {}
            for name, x in twin_originals(ref, band, s.rate, a.dark_db).items():
                dec, digests[name] = encode(x, s)
                n = min(dec.shape[1], x.shape[1])
                mp3s[name], refs[name] = dec[:, :n], x[:, :n]
                restored[name] = base.restore(mp3s[name], SR, seed=0, **guards)[0]
            for name in mp3s:
                n = min(mp3s[name].shape[1], mp3s["full"].shape[1])
                row["same_file"][name] = digests[name] == digests["full"]
                row["mp3_lsd"][name] = kept_band_lsd(mp3s[name][:, :n], mp3s["full"][:, :n], band)
                row["restored_lsd"][name] = lsd(restored[name][:, :n], restored["full"][:, :n], N_FFT, HOP)
                row["mp3_levels"][name] = levels_apart(mp3s[name][:, :n], mp3s["full"][:, :n], band)
                # 1 kHz above where the twin starts to differ: how much darker its original is there, and
                # its restoration
                edge = twin_edges(band, s.rate).get(name, 0.0) + 1000.0
                row["orig_above"][name] = level_above(refs[name], edge) - level_above(refs["full"], edge)
                row["restored_above"][name] = level_above(restored[name], edge) - level_above(restored["full"], edge)
            if vq is not None:
                for name in TWINS:
                    v_mp3 = vq(refs[name], mp3s[name])
                    row["visqol_mp3"][name] = v_mp3
                    row["gain"][name] = {}
                    for lv, rs in restorers.items():
                        y = restored[name] if lv == "0" else rs.restore(mp3s[name], SR, seed=0, **guards)[0]
                        row["gain"][name][lv] = vq(refs[name], y) - v_mp3
            rows.append(row)
        print(f"excerpt {i + 1}/{len(items)} done ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    report(rows, kbps, levels, vq is not None)
    if a.json:
        a.json.write_text(json.dumps({"split": a.split, "tracks": len(tracks), "excerpts": a.excerpts,
                                      "seconds": a.seconds, "dark_db": a.dark_db, "levels": levels,
                                      "rows": rows}, indent=1))


def report(rows: list[dict], kbps: list[int], levels: list[str], visqol: bool) -> None:
    print(f"\n{len(rows) // len(kbps)} excerpts; each twin against the original ('full'); "
          "'nudged' (0.001 dB louder) is the null\n")
    print("| kbit/s | twin | same MP3 file | MP3s apart under the band: LSD, band levels (dB) | "
          "restorations apart, LSD dB | where the twin differs, twin minus full: original, restoration (dB) |")
    print("|---|---|---|---|---|---|")
    for k in kbps:
        rs = [r for r in rows if r["kbps"] == k]
        for name in ("ends 10k", "dark", "nudged"):

            def m(key: str, name: str = name, rs: list[dict] = rs) -> float:
                return float(np.mean([r[key][name] for r in rs]))

            same = sum(r["same_file"][name] for r in rs)
            print(f"| {k} | {name} | {same} of {len(rs)} | {m('mp3_lsd'):.2f}, {m('mp3_levels'):.2f} | "
                  f"{m('restored_lsd'):.2f} | {m('orig_above'):+.1f}, {m('restored_above'):+.2f} |")
    if not visqol:
        return
    print("\nViSQOL minus the MP3's, each twin against its own original (cases more than 0.1 below the MP3), "
          "by restore --highs level\n")
    print("| kbit/s | twin | MP3 ViSQOL | " + " | ".join(f"highs {lv}" for lv in levels) + " |")
    print("|---|---|---|" + "---|" * len(levels))
    for k in kbps:
        rs = [r for r in rows if r["kbps"] == k]
        for name in TWINS:
            cells = []
            for lv in levels:
                g = np.array([r["gain"][name][lv] for r in rs])
                cells.append(f"{g.mean():+.3f} ({int((g < -BELOW).sum())})")
            print(f"| {k} | {name} | {np.mean([r['visqol_mp3'][name] for r in rs]):.3f} | " + " | ".join(cells) + " |")
    print("\nexcerpts where one level leaves none of the three twins more than 0.1 below its MP3:")
    for k in kbps:
        rs = [r for r in rows if r["kbps"] == k]
        served = [one_level_serves(r, levels) for r in rs]
        by_level = {lv: sum(lv in s for s in served) for lv in levels}
        print(f"  {k} kbit/s: {sum(bool(s) for s in served)} of {len(rs)} "
              f"(by level: {', '.join(f'{lv} dB {n}' for lv, n in by_level.items())})")


if __name__ == "__main__":
    main()
