"""A compact, portable subset of the training pairs (for a lent GPU machine).

The pairs in ``data/pairs`` are float16 log-magnitudes, 256 KiB per crop pair;
the whole training set is 2 GB, and a device machine takes at most 64 MiB of
carried files. Log-magnitudes quantised to steps of 0.6 dB (uint8) and
compressed with LZMA take about 62 KiB per pair (measured on the training
set), so a seeded random subset of about 800 crops fits beside the code:

    python -m mp3fix.train.pack --data data/pairs --out .gpu/pairs --train 760 --val 48
    python -m mp3fix.train.pack --unpack .gpu/pairs --out /tmp/pairs      # there

``unpack`` writes ``train.npz`` / ``val.npz`` in the layout ``train.py`` reads.
Crops the trainer would drop (full band: nothing to restore) are left out
before sampling, so every carried crop trains.
"""

from __future__ import annotations

import argparse
import lzma
from pathlib import Path

import numpy as np

from mp3fix.model import ModelConfig
from mp3fix.train.train import crop_cutoffs

STEP_DB = 0.6
STEP = STEP_DB / 20.0 * np.log(10.0)  # one quantisation step in natural-log amplitude


def quantise(logmag: np.ndarray, floor_log: float) -> np.ndarray:
    """Log-magnitudes to uint8 steps of ``STEP_DB`` above ``floor_log`` (clipped to 0..255)."""
    q = np.round((logmag.astype(np.float32) - floor_log) / STEP)
    return np.clip(q, 0, 255).astype(np.uint8)


def dequantise(q: np.ndarray, floor_log: float) -> np.ndarray:
    return (q.astype(np.float32) * STEP + floor_log).astype(np.float16)


def restorable(x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Which crops have a cutoff below the full band (the ones ``train.Pairs`` keeps)."""
    return crop_cutoffs(x, cfg) < cfg.n_bins - cfg.full_band_margin_bins


def pack(src: Path, dst: Path, n: int, seed: int, cfg: ModelConfig) -> int:
    """Write a random subset of ``n`` restorable crops of ``src`` (an .npz of pairs) to ``dst``; bytes written."""
    d = np.load(src)
    xs = d["x"]  # an .npz member is read whole; read it once
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(xs))
    floor_log = float(np.log(cfg.log_floor))
    chosen: list[int] = []
    for start in range(0, len(order), 256):  # the restorable check reads crops in blocks
        block = np.sort(order[start : start + 256])
        keep = restorable(xs[block], cfg)
        chosen.extend(int(i) for i in block[keep])
        if len(chosen) >= n:
            break
    idx = np.sort(np.array(chosen[:n], dtype=np.int64))
    x = quantise(xs[idx], floor_log)
    y = quantise(d["y"][idx], floor_log)
    dst.parent.mkdir(parents=True, exist_ok=True)
    payload = np.stack([x, y])  # (2, N, F, T) uint8
    header = np.array([payload.shape[1], payload.shape[2], payload.shape[3]], dtype=np.int64)
    blob = lzma.compress(payload.tobytes(), preset=6)
    with dst.open("wb") as f:
        np.save(f, header)
        np.save(f, np.float64(floor_log))
        np.save(f, d["cutoff"][idx])
        np.save(f, d["config"][idx])
        f.write(blob)
    return dst.stat().st_size


def unpack(src: Path, dst: Path) -> int:
    """Write the float16 pairs of a packed file ``src`` to ``dst`` (.npz); the number of crops."""
    with src.open("rb") as f:
        n, F, T = (int(v) for v in np.load(f))
        floor_log = float(np.load(f))
        cutoff = np.load(f)
        config = np.load(f)
        payload = np.frombuffer(lzma.decompress(f.read()), dtype=np.uint8).reshape(2, n, F, T)
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dst, x=dequantise(payload[0], floor_log), y=dequantise(payload[1], floor_log),
             cutoff=cutoff, config=config)
    return n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=int, default=760, help="training crops to carry")
    ap.add_argument("--val", type=int, default=48, help="validation crops to carry")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unpack", type=Path, help="a packed folder: write its .npz pairs to --out instead")
    a = ap.parse_args(argv)
    if a.unpack:
        for name in ("train", "val"):
            n = unpack(a.unpack / f"{name}.pack", a.out / f"{name}.npz")
            print(f"{name}: {n} crops -> {a.out / (name + '.npz')}", flush=True)
        return
    cfg = ModelConfig()
    for name, n in (("train", a.train), ("val", a.val)):
        size = pack(a.data / f"{name}.npz", a.out / f"{name}.pack", n, a.seed, cfg)
        print(f"{name}: {n} crops, {size / 2**20:.1f} MiB -> {a.out / (name + '.pack')}", flush=True)


if __name__ == "__main__":
    main()
