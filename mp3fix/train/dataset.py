"""Training data: fetch free music, split by track, make MP3 twins, store spectrogram pairs.

One command (``python -m mp3fix.train.dataset --out data``) does it all:
1. sources: Debian's free game-soundtrack packages (``apt-get download`` and
   unpack, no install), or any folder of good-quality music (``--music DIR``);
2. split by whole track into train / val / test with a seeded shuffle (test
   tracks are only listed, for ``benchmarks/quality.py``; they never touch training).
   Rebuilt into the same ``OUT`` with the same seed after tracks were added,
   every track keeps the split ``splits.json`` gave it and only the new ones
   are drawn (by a seeded hash of their name), so a held-out track never
   moves into training;
   the music of five more game packages (``EXTRA_PACKAGES``) is added to
   training only, so the held-out tracks stay those of the first four;
3. for each train/val track and a few seeded encoder settings drawn from
   ``CONFIGS`` (bitrate, mono/stereo, the sample rate the ``lame`` command line
   picks for that bitrate), encode an excerpt with LAME (ffmpeg's libmp3lame),
   decode it exactly the way the runtime does (``mp3fix.audio``), check that it
   lines up with the original by cross-correlation, and cut aligned crops of
   log-magnitude spectrograms (float16) with the detected cutoff.
The result is ``OUT/pairs/train.npz``, ``OUT/pairs/train-extra.npz``,
``OUT/pairs/val.npz`` and ``OUT/pairs/splits.json`` (the music goes in
``OUT/music/``), the same bytes for the same music, seed and options whatever
``--jobs`` is. A track that cannot be decoded, or is silent, gives no pairs and
is named in the output; a split left with no pairs is an error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import correlate

from mp3fix.audio import decode, ffmpeg_exe
from mp3fix.errors import Mp3fixError
from mp3fix.model import ModelConfig
from mp3fix.spectral import detect_cutoff, log_magnitude, stft, to_mid_side

PACKAGES = ["ufoai-music", "warzone2100-music", "wesnoth-1.16-music", "singularity-music"]
# More free game music, for training only (the splits above stay as they were, so
# the held-out tracks are the same): package -> the folder its music is in (0 A.D.
# keeps its music inside a zip archive). 7.8 hours, nearly all full band.
EXTRA_PACKAGES = {"0ad-data": "audio/music/", "freedroidrpg-data": "sound/music/",
                  "hedgewars-data": "Data/Music/", "supertuxkart-data": "data/music/",
                  "widelands-data": "data/music/"}
AUDIO_EXT = {".ogg", ".opus", ".flac", ".wav", ".mp3", ".m4a"}


@dataclass(frozen=True)
class EncoderConfig:
    kbps: int
    channels: int
    rate: int  # the rate the lame command line resamples to for this bitrate
    weight: float


# Measured with LAME 3.100's command line on 44.1 kHz input (see docs/design.md).
CONFIGS = [
    EncoderConfig(16, 2, 8000, 2.0),
    EncoderConfig(16, 1, 16000, 1.0),
    EncoderConfig(24, 2, 8000, 1.0),
    EncoderConfig(24, 1, 16000, 0.5),
    EncoderConfig(32, 2, 16000, 2.0),
    EncoderConfig(32, 1, 22050, 1.0),
    EncoderConfig(48, 2, 22050, 1.0),
    EncoderConfig(48, 1, 32000, 0.5),
    EncoderConfig(64, 2, 24000, 2.0),
    EncoderConfig(64, 1, 44100, 0.5),
    EncoderConfig(96, 2, 32000, 0.5),
    EncoderConfig(128, 2, 44100, 0.5),
]


def fetch_packages(root: Path) -> Path:
    """Download and unpack the music packages into ``root`` (no install)."""
    debs = root / "debs"
    raw = root / "raw"
    debs.mkdir(parents=True, exist_ok=True)
    for pkg in PACKAGES:
        if not any(debs.glob(f"{pkg}_*.deb")):
            subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True)
    if not raw.exists():
        raw.mkdir()
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(raw)], check=True)
        for pk3 in raw.rglob("*.pk3"):
            with zipfile.ZipFile(pk3) as z:
                z.extractall(raw / "pk3" / pk3.stem)
    return raw


def fetch_extra(root: Path) -> Path:
    """Download ``EXTRA_PACKAGES`` and keep only their music, in ``root/extra/PKG``."""
    debs, extra = root / "debs-extra", root / "extra"
    debs.mkdir(parents=True, exist_ok=True)
    for pkg, folder in EXTRA_PACKAGES.items():
        dst = extra / pkg
        if dst.exists():
            continue
        if not any(debs.glob(f"{pkg}_*.deb")):
            subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            subprocess.run(["dpkg", "-x", str(next(debs.glob(f"{pkg}_*.deb"))), tmp], check=True)
            part = dst.with_suffix(".part")
            collect_music(Path(tmp), folder, part)
            part.rename(dst)
    return extra


def collect_music(tree: Path, folder: str, dst: Path) -> int:
    """Move the audio files under ``folder`` (a path inside ``tree``, or inside a zip
    archive there) to ``dst``; returns how many. Sound effects elsewhere stay."""
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(tree.rglob("*")):
        if f.suffix.lower() == ".zip":
            with zipfile.ZipFile(f) as z:
                for info in z.infolist():
                    if info.filename.startswith(folder) and Path(info.filename).suffix.lower() in AUDIO_EXT:
                        (dst / Path(info.filename).name).write_bytes(z.read(info))
                        n += 1
        elif f.is_file() and f.suffix.lower() in AUDIO_EXT and f"/{folder}" in "/" + f.relative_to(tree).as_posix():
            f.replace(dst / f.name)
            n += 1
    return n


def find_tracks(folder: Path, min_seconds: float = 20.0, skipped: list[str] | None = None,
                min_rate: int = 32000) -> list[Path]:
    """Audio files in ``folder`` at least ``min_seconds`` long and sampled at
    ``min_rate`` or more (extensionless Ogg too); audio files left out (too
    short, too low a rate to teach the highs, unreadable) are described in
    ``skipped``. (No track of the Debian packages is left out by the rate.)"""
    out = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        if p.suffix.lower() not in AUDIO_EXT:
            with p.open("rb") as f:
                if f.read(4) != b"OggS":
                    continue
        try:
            info = sf.info(str(p))
            dur, rate = info.duration, info.samplerate
        except Exception:  # noqa: BLE001 - libsndfile can't read Opus/M4A; ask ffmpeg then
            dur, rate = _ffmpeg_duration_and_rate(p)
        if dur is None:
            why = "cannot be read"
        elif dur < min_seconds:
            why = f"{dur:.1f} s, shorter than {min_seconds:g} s"
        elif rate < min_rate:
            why = f"sampled at {rate} Hz: nothing above {rate / 2000:g} kHz to learn the highs from"
        else:
            out.append(p)
            continue
        if skipped is not None:
            skipped.append(f"{p}: {why}")
    return out


def _ffmpeg_duration_and_rate(path: Path) -> tuple[float | None, int]:
    from mp3fix.audio import probe

    try:
        info = probe(path)
    except Exception:  # noqa: BLE001
        return None, 0
    return info.duration, info.sample_rate


def _ffmpeg_duration(path: Path) -> float | None:
    return _ffmpeg_duration_and_rate(path)[0]


def split_tracks(tracks: list[Path], seed: int, val: float = 0.06, test: float = 0.1,
                 previous: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Tracks into test / val / train by a seeded shuffle. With ``previous`` (the
    splits an earlier build with the same seed recorded), each track listed there
    keeps its split and only the others are drawn, each by a seeded hash of its
    name (``_hash_split``), so that adding music never moves a held-out track."""
    if previous:
        where = {t: name for name in ("test", "val", "train") for t in previous.get(name, [])}
        out: dict[str, list[str]] = {"test": [], "val": [], "train": []}
        for t in map(str, tracks):
            out[where.get(t) or _hash_split(t, seed, val, test)].append(t)
        return {k: sorted(v) for k, v in out.items()}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(tracks))
    n_test = max(1, round(len(tracks) * test))
    n_val = max(1, round(len(tracks) * val))
    pick = [str(tracks[i]) for i in order]
    return {"test": sorted(pick[:n_test]), "val": sorted(pick[n_test : n_test + n_val]),
            "train": sorted(pick[n_test + n_val :])}


def _hash_split(track: str, seed: int, val: float, test: float) -> str:
    """A track's split from a seeded hash of its file name: test with probability
    ``test``, val with ``val``; the same for a track wherever its folder is."""
    h = hashlib.sha256(f"{seed}:{Path(track).name}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    return "test" if u < test else "val" if u < test + val else "train"


def encode_mp3(audio: np.ndarray, sr: int, cfg: EncoderConfig, dst: Path) -> None:
    """Encode (channels, n) float audio as LAME would from its command line."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
        sf.write(wav.name, audio.T, sr, subtype="FLOAT")
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-y", "-i", wav.name, "-ac", str(cfg.channels),
             "-ar", str(cfg.rate), "-c:a", "libmp3lame", "-b:a", f"{cfg.kbps}k", str(dst)],
            check=True,
        )


def find_lag(a: np.ndarray, b: np.ndarray, max_lag: int = 4000) -> int:
    """Lag of ``a`` relative to ``b`` (positive: ``a`` is late), by cross-correlation."""
    n = min(len(a), len(b))
    c = correlate(a[:n], b[:n], mode="full", method="fft")
    mid = n - 1
    window = c[mid - max_lag : mid + max_lag + 1]
    return int(np.argmax(window)) - max_lag


def make_pairs(args: tuple) -> dict:
    """Crops for one track: several encoder settings, aligned, as log-magnitudes.
    ``args``: (path, seed, n_configs, model config dict, excerpt seconds, crops
    per setting[, mid_side]); with ``mid_side`` a stereo setting's crops are of
    its mid and side (as the runtime restores stereo) instead of left and right."""
    path, seed, n_configs, cfg_dict, excerpt_s, crops_per, *rest = args
    mid_side = bool(rest[0]) if rest else False
    mc = ModelConfig(**cfg_dict)
    rng = np.random.default_rng(seed)
    sr = mc.sample_rate
    empty = {"x": [], "y": [], "cutoff": [], "config": [], "lags": [], "path": path, "seconds": 0.0}
    try:
        orig, _ = decode(path, sr)
    except Mp3fixError as exc:  # a corrupt file: its pairs are left out, the build goes on
        return {**empty, "error": str(exc)}
    mono_source = orig.shape[0] == 1
    if mono_source:  # encoded as stereo too; its two channels then give one channel's crops, not two alike
        orig = np.repeat(orig, 2, axis=0)
    n_ex = int(excerpt_s * sr)
    xs, ys, cuts, kinds, lags = [], [], [], [], []
    weights = np.array([c.weight for c in CONFIGS])
    chosen = rng.choice(len(CONFIGS), size=n_configs, replace=False, p=weights / weights.sum())
    for ci in chosen:
        cfg = CONFIGS[ci]
        start = int(rng.integers(0, max(1, orig.shape[1] - n_ex)))
        ref = orig[:, start : start + n_ex]
        peak = float(np.abs(ref).max())
        if peak < 1e-3:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            mp3 = Path(tmp) / "x.mp3"
            encode_mp3(ref, sr, cfg, mp3)
            dec, _ = decode(mp3, sr)
        target = ref if cfg.channels == 2 else ref.mean(axis=0, keepdims=True)
        lag = find_lag(dec.mean(0), target.mean(0))
        lags.append(lag)
        if lag != 0:
            continue
        if mid_side and cfg.channels == 2:
            dec, target = to_mid_side(dec), to_mid_side(target)
        n = min(dec.shape[1], target.shape[1])
        X = stft(dec[:, :n], mc.n_fft, mc.hop)[:, : mc.n_bins]
        Y = stft(target[:, :n], mc.n_fft, mc.hop)[:, : mc.n_bins]
        cutoff = detect_cutoff(np.abs(X) ** 2, mc.cutoff_drop_db, mc.cutoff_width)
        lx = log_magnitude(X, mc.log_floor)
        ly = log_magnitude(Y, mc.log_floor)
        frames = lx.shape[-1]
        T = mc.train_crop_frames
        if frames <= T:
            continue
        for _ in range(crops_per):
            t0 = int(rng.integers(0, frames - T))
            for ch in range(1 if mono_source else lx.shape[0]):
                energy = np.exp(ly[ch, :, t0 : t0 + T]).mean()
                if energy < 1e-4:  # near-silent crop: teaches nothing
                    continue
                xs.append(lx[ch, :, t0 : t0 + T].astype(np.float16))
                ys.append(ly[ch, :, t0 : t0 + T].astype(np.float16))
                cuts.append(cutoff)
                kinds.append(ci)
    return {"x": xs, "y": ys, "cutoff": cuts, "config": kinds, "lags": lags, "path": path,
            "seconds": len(chosen) * excerpt_s}


NPZ = {"train": "train.npz", "val": "val.npz", "train_extra": "train-extra.npz"}


class DatasetError(Exception):
    """A data set that cannot be built as asked: ``main`` prints it as one line."""


def build(out: Path, tracks: list[Path], seed: int, n_configs: int, excerpt_s: float,
          crops_per: int, jobs: int, extra: list[Path] | None = None, skip_existing: bool = False,
          mid_side: bool = False) -> dict:
    """Pairs for the train and val tracks (and ``extra`` tracks, training only) in ``out``.

    ``skip_existing`` keeps a split's pairs already in ``out`` when the split is
    the same as the one recorded there (the build is seeded per track, so they
    would come out the same): adding the extra tracks then costs only theirs.
    """
    mc = ModelConfig()
    old = json.loads((out / "splits.json").read_text()) if (out / "splits.json").exists() else None
    previous = old["splits"] if old and old["summary"].get("seed") == seed else None
    splits = split_tracks(tracks, seed, previous=previous)
    if previous and any(previous.get(k) != splits[k] for k in ("test", "val", "train")):
        print("tracks added or gone since the last build: the others keep their splits", flush=True)
    if extra:
        splits["train_extra"] = sorted(str(p) for p in extra)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"seed": seed, "hours": {}, "pairs": {}, "misaligned": 0, "misaligned_by_split": {},
                     "mid_side": mid_side}
    for name in ("train", "val", "train_extra"):
        if name not in splits:
            continue
        if (skip_existing and old and old["splits"].get(name) == splits[name] and (out / NPZ[name]).exists()
                and name in old["summary"]["pairs"] and old["summary"].get("mid_side", False) == mid_side):
            summary["pairs"][name] = old["summary"]["pairs"][name]
            # a data set built before the counts per split has one total, for train and val
            by_split = old["summary"].get("misaligned_by_split", {"train": old["summary"]["misaligned"]})
            summary["misaligned_by_split"][name] = by_split.get(name, 0)
            print(f"[{name}] kept {out / NPZ[name]}", flush=True)
            continue
        base = seed * 100003 + (10**6 if name == "train_extra" else 0)
        jobs_args = [(p, base + i, n_configs, mc.to_dict(), excerpt_s, crops_per, mid_side)
                     for i, p in enumerate(splits[name])]
        xs, ys, cuts, kinds = [], [], [], []
        t0 = time.time()
        with Pool(jobs) as pool:
            # in track order (not as they finish), so that --jobs does not change the bytes
            for k, res in enumerate(pool.imap(make_pairs, jobs_args)):
                if res.get("error"):
                    print(f"[{name}] skipped {res['error']}", flush=True)
                elif not res["x"]:
                    print(f"[{name}] no pairs from {res['path']} (silent, or shorter than a crop)", flush=True)
                xs += res["x"]
                ys += res["y"]
                cuts += res["cutoff"]
                kinds += res["config"]
                summary["misaligned_by_split"][name] = (summary["misaligned_by_split"].get(name, 0)
                                                        + sum(1 for lag in res["lags"] if lag != 0))
                print(f"[{name}] {k + 1}/{len(jobs_args)} tracks, {len(xs)} pairs, "
                      f"{time.time() - t0:.0f}s", flush=True)
        if not xs:
            raise DatasetError(f"the {name} split has no pairs ({len(jobs_args)} track(s): each silent, "
                               "unreadable or shorter than a crop); add music or change --seed")
        tmp = out / (NPZ[name] + ".part.npz")
        np.savez(tmp, x=np.stack(xs), y=np.stack(ys),
                 cutoff=np.array(cuts, dtype=np.int16), config=np.array(kinds, dtype=np.int16))
        tmp.replace(out / NPZ[name])
        summary["pairs"][name] = len(xs)
    summary["misaligned"] = sum(summary["misaligned_by_split"].values())
    for name, paths in splits.items():
        secs = sum(_ffmpeg_duration(Path(p)) or 0.0 for p in paths)
        summary["hours"][name] = round(secs / 3600, 2)
    summary["configs"] = [c.__dict__ for c in CONFIGS]
    (out / "splits.json").write_text(json.dumps({"splits": splits, "summary": summary}, indent=1))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data"))
    ap.add_argument("--music", type=Path, help="use this folder of music instead of the Debian packages")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--configs-per-track", type=int, default=3)
    ap.add_argument("--excerpt", type=float, default=60.0, help="seconds encoded per setting")
    ap.add_argument("--crops", type=int, default=12, help="crops per track and setting")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-extra", action="store_true",
                    help="leave out the training-only packages (EXTRA_PACKAGES; the data set before 2026-11-28)")
    ap.add_argument("--mid-side", action="store_true",
                    help="crops of stereo settings from their mid and side, as the runtime restores stereo")
    ap.add_argument("--skip-existing", action="store_true",
                    help="keep pairs already built for an unchanged split (e.g. to add the extra tracks)")
    a = ap.parse_args()
    if a.jobs < 1 or a.crops < 1:
        ap.error("--jobs and --crops must be at least 1")
    if not 1 <= a.configs_per_track <= len(CONFIGS):
        ap.error(f"--configs-per-track must be 1 to {len(CONFIGS)} (the encoder settings there are)")
    crop_s = (ModelConfig().train_crop_frames + 1) * ModelConfig().hop / ModelConfig().sample_rate
    if a.excerpt <= crop_s:
        ap.error(f"--excerpt must be longer than a training crop ({crop_s:.1f} s)")
    if a.music is not None and not a.music.is_dir():
        ap.error(f"--music {a.music}: no such folder")
    try:
        run(a)
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}") from None


def run(a: argparse.Namespace) -> None:
    """The command, its arguments checked."""
    music = a.music or fetch_packages(a.out / "music")
    skipped: list[str] = []
    tracks = find_tracks(music, skipped=skipped)
    print(f"{len(tracks)} tracks in {music}")
    for line in skipped:
        print(f"skipped {line}")
    if len(tracks) < 3:
        raise DatasetError(f"{len(tracks)} track(s) of 20 s or more in {music}: at least 3 are needed "
                           "(one each for train, validation and test)")
    extra = None
    if not a.music and not a.no_extra:
        extra = find_tracks(fetch_extra(a.out / "music"))
        print(f"{len(extra)} training-only tracks in {a.out / 'music' / 'extra'}")
    summary = build(a.out / "pairs", tracks, a.seed, a.configs_per_track, a.excerpt, a.crops, a.jobs,
                    extra, a.skip_existing, a.mid_side)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
