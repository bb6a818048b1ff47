"""Post-hoc changes to a restoration, scored against the restoration as shipped.

    python benchmarks/posthoc.py --change shelf:15000:-6 --change z:0.5 --change hybrid:12000 \\
        [--split val] [--tracks 9] [--every 1] [--track NAME ...] [--excerpts 3] [--seconds 8]
        [--kbps 16,32,64] [--mono] [--model PATH] [--keep-mp3-band]

Each excerpt is encoded and decoded as in ``quality.py`` and restored (seed 0)
once as shipped and once per change:
- ``shelf:HZ:DB``: DB decibels added to the restored band above HZ (a 500 Hz
  ramp centred on HZ), after the model and its calibration;
- ``tilt:DB``: DB decibels per octave above the cutoff added to the restored
  band (negative: darker the higher it goes; a listener's alternative to the
  flat ``restore --highs``);
- ``z:S``: the model's noise z scaled by S (0: no noise; "truncation");
- ``hybrid:HZ``: the restoration below HZ, band copy (``baselines.py``) above
  (in the STFT), which shows in which band ViSQOL tells the two apart;
- ``source:HZ``: the restoration told that the recording itself ends at HZ
  (``restore --source-band``), for originals whose own edge is known;
- ``keep:R``: in the restored band, every bin where the MP3 is more than R
  times louder than the restoration keeps the MP3's (content the encoder kept
  in some frames above its ragged cliff);
- ``zlink:1``: left and right restored with one z for both (the channel-0
  noise for each), instead of one each;
- ``copyfill:BINS:DB``: like ``fill``, but the dropouts filled without the
  model: from the band BINS lower, each bin matched to the 75th percentile of
  its own level over the chunk;
- ``fillcap:F``: the shipped dropout filling, each filled bin no louder than
  the MP3's loudest in that bin within F frames either side (a dropout is a
  hole in time; a dark recording's quiet top band is not);
- ``fillgain:DB``: the shipped dropout filling, its values DB decibels
  louder (negative: quieter) where it fills;
- ``fillleft:B``: the shipped dropout filling, but down to B bins above 0
  instead of ``copy_width_bins`` (the filling pass then copies from a
  narrower band);
- ``midfill:1``: left and right restored, the dropout filling's generator
  pass run once, on the mid of a stereo chunk, instead of once per channel (half the filling's cost),
  each channel's filling shifted by its level against the mid's, per frame,
  in the band the filling copies from;
- ``selfcal:BETA:CUTONLY``: the restored band's level moved by -BETA times
  the dropout filling pass's own level error (its restoration of the band
  under the cutoff against the MP3's, in dB, less that error's mean at this
  cutoff, ``SELF_CAL_CENTRE``), per chunk; CUTONLY 1: only ever lowered;
- ``stereo:K``: a stereo excerpt restored as its left and right, each with
  noise of its own (K 0, as shipped until 2026-11-29), as its mid and side
  with the same noise (1, ``Restorer(mid_side=True)``, as shipped since), or
  only its mid restored and the MP3's side kept as it is (2);
- ``gain:DB``: the MP3 restored DB decibels louder, the restoration brought
  back to the MP3's level (how much the model's output depends on the level
  it is given);
- ``level:DB``: the same, the MP3 brought to DB (mean power over its STFT's
  bins and frames, as the data set's crops are measured; the median training
  crop is at 9.6 dB);
- ``slopecap:MARGIN:OCTAVES:BANDS``: the restored band, on average over each
  chunk, no louder than the MP3's own slope (dB against log frequency, fitted
  over the OCTAVES under the cutoff in BANDS bands per octave, before the
  dropout filling) carried on upwards, plus MARGIN dB (``slope_cap``);
- ``candidate:1``: the restoration by another model (``--candidate PATH``),
  for paired comparisons of checkpoints;
- ``phase:N``: N Griffin-Lim iterations on the restored band's phase after
  the ``copy`` phase (``restore --phase-iters``);
- ``fill:BINS:DB``: the encoder's dropouts in the BINS under the cutoff (at
  most down to ``copy_width_bins`` above 0) filled where the MP3 is more than
  DB below the model's restoration of that band, and the band above the cutoff
  restored from the filled band (``ModelConfig.hole_fill_*``), at any cutoff;
  ``fill:0:0``: none.
- ``gate:UNITS``: after the restoration, the restored band (above the MP3's
  cutoff) faded out wherever the mono mix's level in a ViSQOL band (32
  gammatone bands, estimated from the STFT, in ViSQOL's units of 10 log10 of
  RMS amplitude) is under UNITS, over 3 units; ViSQOL treats everything
  under -45 as silence (``gate``);
- ``mp3:1``: the MP3 itself, unrestored (for the cases below it);
- ``cap:DB``: after the restoration, each restored bin's mean power over the
  excerpt no more than DB decibels above band copy's (``baselines.py``; its
  -6 dB per 2 kHz), the bin scaled down by the excess (``band_copy_cap``);
``--mono`` encodes a mono MP3 (of the excerpt's mid) at the sample rate the
``lame`` command line picks for it, scored against that mid.
``--lowpass HZ`` low-passes every excerpt at HZ before it is encoded and
scored, a stand-in for originals that are band-limited themselves (item 6 of
the model card's "What limits it now"), which the validation tracks lack.
``--keep-mp3-band`` restores the shipped baseline (and every change but
``fill``) without the shipped model's own dropout filling.
Prints, per bitrate, ViSQOL and LSD of each change and its ViSQOL minus the
shipped restoration's, averaged per track first (standard error over tracks).
``--split train --every 6 --excerpts 1`` scores the training tracks the level
calibration was chosen on. Used for the model card's "What limits it", item 9.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import band_copy  # noqa: E402
from quality import SR, Visqol, excerpts, lsd, twin_at  # noqa: E402
from splits import read_splits  # noqa: E402

import mp3fix.restore as restore_module  # noqa: E402
from mp3fix.model import extension_gain, fill_holes  # noqa: E402
from mp3fix.phase import copy_phase_sources  # noqa: E402
from mp3fix.spectral import from_mid_side, istft, log_magnitude, stft, to_mid_side  # noqa: E402

# the filling pass's mean level error (dB) at the cutoffs of 16, 32 and 64 kbit/s
# (21 training and 9 validation tracks, 3 excerpts each)
SELF_CAL_CENTRE = ([3785.0, 5727.0, 11132.0], [5.5, -0.8, -0.6])


def parse_change(spec: str) -> tuple[str, list[float]]:
    kind, *args = spec.split(":")
    want = {"shelf": 2, "tilt": 1, "z": 1, "hybrid": 1, "source": 1, "keep": 1, "fill": 2, "phase": 1, "zlink": 1,
            "copyfill": 2, "fillcap": 1, "fillleft": 1, "midfill": 1, "gate": 1, "cap": 1, "mp3": 1,
            "candidate": 1, "selfcal": 2, "stereo": 1, "gain": 1, "level": 1, "fillgain": 1, "slopecap": 3}
    if kind not in want or len(args) != want[kind]:
        raise SystemExit(f"bad --change {spec!r}: shelf:HZ:DB, tilt:DB, z:SCALE, hybrid:HZ, source:HZ, keep:RATIO, "
                         "fill:BINS:DB, copyfill:BINS:DB, fillcap:F, fillleft:B, phase:N, zlink:1, midfill:1 "
                         "candidate:1, selfcal:BETA:CUTONLY, stereo:0|1|2, gain:DB, level:DB, fillgain:DB "
                         "slopecap:MARGIN:OCTAVES:BANDS, gate:UNITS, cap:DB or mp3:1")
    return kind, [float(a) for a in args]


class Changed:
    """A Restorer whose restored band can be shelved, whose z can be scaled, and
    which can keep the MP3's own louder bins in the restored band."""

    def __init__(self, model: str | None, hole_fill: bool = True, candidate: str | None = None) -> None:
        self.table = restore_module.normal_table().copy()
        self.z_scale = 1.0
        self.shelf: tuple[float, float] | None = None
        self.tilt: float | None = None
        restore_module.normal_table = lambda: self.table * np.float32(self.z_scale)
        self.r = restore_module.Restorer(model, device="cpu", threads=1, hole_fill=hole_fill)
        self.mid_side = self.r.mid_side  # as shipped
        self.hole_fill = hole_fill
        self.candidate = (restore_module.Restorer(candidate, device="cpu", threads=1, hole_fill=hole_fill)
                          if candidate else None)
        cfg = self.r.config
        self.shipped_fill = (cfg.hole_fill_bins, cfg.hole_fill_db, list(cfg.hole_fill_hz))
        finish = self.r._finish
        bins = np.arange(self.r.config.n_bins, dtype=np.float32)

        def shelved(prep, restored, seed, variants, highs_db):  # noqa: ANN001, ANN202
            if self.shelf is not None:
                hz, db = self.shelf
                ramp = np.clip((bins - hz / SR * self.r.config.n_fft) / 12 + 0.5, 0, 1)
                restored = restored + (prep.mask1 * ramp * db / 20 * np.log(10))[:, None].astype(np.float32)
            if self.tilt is not None:
                octaves = np.log2(np.maximum(bins, 1.0) / max(prep.cutoff, 1)).clip(0.0, None)
                restored = restored + (prep.mask1 * octaves * self.tilt / 20 * np.log(10))[:, None].astype(np.float32)
            if self.slopecap is not None:
                restored = restored + slope_cap(prep, restored, self.r.config, self.prefill.get(prep.first_frame),
                                                *self.slopecap)[:, None]
            if self.selfcal is not None and prep.first_frame in self.self_error:
                beta, cut_only = self.selfcal
                hz = prep.cutoff * SR / self.r.config.n_fft
                db = -beta * (self.self_error[prep.first_frame] - np.interp(hz, *SELF_CAL_CENTRE))
                db = min(db, 0.0) if cut_only else db
                restored = restored + (prep.mask1 * db / 20 * np.log(10))[:, None].astype(np.float32)
            return finish(prep, restored, seed, variants, highs_db)

        self.r._finish = shelved
        self.keep: float | None = None
        phase = restore_module.restore_phase

        def keeping(mag, mp3_spec, mask, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            spec = phase(mag, mp3_spec, mask, *args, **kwargs)
            if self.keep is not None:
                band = (mask > 0)[:, None]
                louder = band & (np.abs(mp3_spec[..., : spec.shape[-2], :]) > self.keep * np.abs(spec))
                spec = np.where(louder, mp3_spec[..., : spec.shape[-2], :], spec)
            return spec

        restore_module.restore_phase = keeping
        self.zlink = False
        draw = restore_module.draw_z

        def linked(seed, variant, channel, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            return draw(seed, variant, 0 if self.zlink else channel, *args, **kwargs)

        restore_module.draw_z = linked
        self.copyfill: tuple[int, float] | None = None
        prepare = self.r._prepare

        def copyfilled(chunk, start, seed, variants, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            prep = prepare(chunk, start, seed, variants, *args, **kwargs)
            if prep is None or self.copyfill is None or variants != 1:
                return prep
            return copy_fill(self.r, prep, *self.copyfill)

        self.r._prepare = copyfilled
        self.fillcap = 0
        self.fillgain = 0.0
        fill_holes_shipped = restore_module.fill_holes

        def capped(out, fill, mp3, lo, hi, db):  # noqa: ANN001, ANN202
            if self.fillgain:
                fill = fill * np.float32(10 ** (self.fillgain / 20))
            if self.fillcap:
                from scipy.ndimage import maximum_filter1d

                near = maximum_filter1d(np.abs(mp3[..., lo:hi, :]), 2 * self.fillcap + 1, axis=-1)
                band = fill[..., lo:hi, :]
                scale = np.minimum(1.0, near / np.maximum(np.abs(band), 1e-30)).astype(np.float32)
                fill = fill.copy()
                fill[..., lo:hi, :] = band * scale
            return fill_holes_shipped(out, fill, mp3, lo, hi, db)

        restore_module.fill_holes = capped
        self.fillleft = 0
        bins_shipped = restore_module.hole_fill_bins

        def left(cutoff, cfg):  # noqa: ANN001, ANN202
            n = bins_shipped(cutoff, cfg)
            if self.fillleft and n:
                n = max(0, min(cfg.hole_fill_bins, cutoff - self.fillleft))
            return n

        restore_module.hole_fill_bins = left
        self.midfill = False
        fill_dropouts = self.r._fill_dropouts

        def midfilled(low, lm, z, cutoff, fill, *args):  # noqa: ANN001, ANN002, ANN202
            if not self.midfill or low.shape[0] != 2:
                return fill_dropouts(low, lm, z, cutoff, fill, *args)
            cfg, gen, frames = self.r.config, self.r.generator, low.shape[-1]
            sources = copy_phase_sources(cutoff - fill, cfg.n_bins, cfg.copy_width_bins)
            mid = 0.5 * (low[0] + low[1])
            lm_mid = lm[:1].copy()
            lm_mid[0, 0, :, :frames] = log_magnitude(mid, cfg.log_floor)
            src = np.unique(sources[cutoff - fill : cutoff])
            # each channel's level against the mid's, per frame, in the band the filling copies from
            offset = 0.5 * np.log((np.sum(np.abs(low[:, src]) ** 2, axis=1) + 1e-20)
                                  / (np.sum(np.abs(mid[src]) ** 2, axis=0) + 1e-20))

            def once(lm_, mask, z_, copied):  # noqa: ANN001, ANN202
                out = np.repeat(gen(lm_mid, mask[:1], z_[:1], lm_mid[:, :, sources, :]), 2, axis=0)
                out[:, 0, :, :frames] += offset[:, None, :].astype(np.float32)
                return out

            self.r.generator = once
            try:
                return fill_dropouts(low, lm, z, cutoff, fill, *args)
            finally:
                self.r.generator = gen

        self.r._fill_dropouts = midfilled
        self.selfcal: tuple[float, bool] | None = None
        self.self_error: dict[int, float] = {}
        last: list[float] = []
        fill_holes_capped = restore_module.fill_holes

        def measured(out, fill, mp3, lo, hi, db):  # noqa: ANN001, ANN202
            f = float(np.sum(np.abs(fill[..., lo:hi, :]) ** 2))
            m = float(np.sum(np.abs(mp3[..., lo:hi, :]) ** 2))
            last[:] = [10 * np.log10((f + 1e-20) / (m + 1e-20))]
            return fill_holes_capped(out, fill, mp3, lo, hi, db)

        restore_module.fill_holes = measured
        fill_dropouts_mid = self.r._fill_dropouts

        def keyed(low, lm, z, cutoff, fill, seed, first_frame):  # noqa: ANN001, ANN202
            last.clear()
            fill_dropouts_mid(low, lm, z, cutoff, fill, seed, first_frame)
            if last:
                self.self_error[first_frame] = last[0]

        self.r._fill_dropouts = keyed
        self.slopecap: tuple[float, float, float] | None = None
        self.prefill: dict[int, np.ndarray] = {}
        fill_dropouts_keyed = self.r._fill_dropouts

        def stashed(low, lm, z, cutoff, fill, seed, first_frame):  # noqa: ANN001, ANN202
            self.prefill[first_frame] = low.copy()  # the MP3 before its dropouts are filled
            fill_dropouts_keyed(low, lm, z, cutoff, fill, seed, first_frame)

        self.r._fill_dropouts = stashed

    def __call__(self, x: np.ndarray, kind: str = "", args: list[float] | None = None) -> np.ndarray:
        self.z_scale, self.shelf, self.keep = 1.0, None, None
        self.tilt = args[0] if kind == "tilt" else None
        cfg = self.r.config
        cfg.hole_fill_bins, cfg.hole_fill_db, cfg.hole_fill_hz = self.shipped_fill
        self.r.hole_fill = self.hole_fill
        self.r.phase_iters = int(args[0]) if kind == "phase" else 0
        self.zlink = kind == "zlink" and args[0] > 0
        self.copyfill = (int(args[0]), args[1]) if kind == "copyfill" else None
        self.fillcap = int(args[0]) if kind == "fillcap" else 0
        self.fillgain = args[0] if kind == "fillgain" else 0.0
        self.fillleft = int(args[0]) if kind == "fillleft" else 0
        self.midfill = kind == "midfill" and args[0] > 0
        self.selfcal = (args[0], args[1] > 0) if kind == "selfcal" else None
        self.self_error.clear()
        self.slopecap = (args[0], args[1], args[2]) if kind == "slopecap" else None
        self.prefill.clear()
        if self.copyfill:
            self.r.hole_fill = False
        if kind == "fill":
            cfg.hole_fill_bins, cfg.hole_fill_db, cfg.hole_fill_hz = int(args[0]), args[1], [0.0, float("inf")]
            self.r.hole_fill = True
        if kind == "keep":
            self.keep = args[0]
        if kind == "z":
            self.z_scale = args[0]
        elif kind == "shelf":
            self.shelf = (args[0], args[1])
        source = args[0] if kind == "source" else None
        if kind == "mp3":
            return x
        if kind == "candidate":
            if self.candidate is None:
                raise SystemExit("--change candidate:1 needs --candidate MODEL")
            return self.candidate.restore(x, SR, seed=0, variants=1)[0]
        # the changes measured on left and right before mid and side shipped stay so
        self.r.mid_side = self.mid_side and kind not in ("zlink", "midfill")
        if kind == "stereo":
            self.r.mid_side = args[0] > 0
            if args[0] == 2 and x.shape[0] == 2:
                mid, side = to_mid_side(x)
                return from_mid_side(np.stack([self.r.restore(mid[None], SR, seed=0, variants=1)[0][0], side]))
        if kind in ("gain", "level"):
            db = args[0]
            if kind == "level":  # to this level, as the data set's crops measure theirs
                cfg = self.r.config
                lm = log_magnitude(stft(x, cfg.n_fft, cfg.hop)[:, : cfg.n_bins], cfg.log_floor)
                db = args[0] - 10 * np.log10(np.exp(2 * lm).mean())
            g = np.float32(10 ** (db / 20))
            return self.r.restore(x * g, SR, seed=0, variants=1)[0] / g
        y = self.r.restore(x, SR, seed=0, variants=1, source_band_hz=source)[0]
        if kind == "gate":
            y = gate(y, x, args[0])
        if kind == "cap":
            y = band_copy_cap(y, x, args[0])
        if kind == "hybrid":
            n_fft = self.r.config.n_fft
            f = np.arange(n_fft // 2 + 1) * SR / n_fft
            below = f[None, :, None] < args[0]
            spec = np.where(below, stft(y, n_fft, n_fft // 2), stft(band_copy(x), n_fft, n_fft // 2))
            y = istft(spec, n_fft, n_fft // 2, x.shape[-1])
        return y


def slope_cap(prep, restored: np.ndarray, cfg, mp3_low: np.ndarray | None,  # noqa: ANN001
              margin_db: float, octaves: float, per_octave: float) -> np.ndarray:
    """Natural-log gain per bin (n_bins,) that brings the restored band, on
    average over the chunk, no louder than the MP3's own spectral slope
    extrapolated upwards plus ``margin_db``: a straight line in dB against
    log frequency fitted to the MP3's mean power (before its dropouts are
    filled, all channels) in ``per_octave`` bands per octave over the
    ``octaves`` below the cutoff, excess measured in the same bands above.
    Only ever lowers."""
    cut = prep.cutoff
    spec = prep.spec[:, : cfg.n_bins] if mp3_low is None else mp3_low
    hi = cut - cfg.mask_ramp_bins
    lo = max(2, int(hi / 2**octaves))
    if hi - lo < 8:
        return np.zeros(cfg.n_bins, np.float32)
    gain = extension_gain(cut, cfg)
    mp3_p = (np.abs(spec) ** 2).sum(0).mean(-1)  # (bins,)
    c = spec.shape[0]
    rest_p = np.exp(2 * (restored[:c] + gain * prep.mask1[:, None])).sum(0).mean(-1)
    logf = np.log2(np.arange(cfg.n_bins) + 0.5)
    step = 1 / per_octave
    # fit on band means below the cutoff
    xs, ys = [], []
    for a in np.arange(np.log2(lo), np.log2(hi), step):
        sel = (logf >= a) & (logf < a + step) & (np.arange(cfg.n_bins) < hi)
        if sel.any():
            xs.append(logf[sel].mean())
            ys.append(10 * np.log10(mp3_p[sel].mean() + 1e-20))
    if len(xs) < 3:
        return np.zeros(cfg.n_bins, np.float32)
    b, a0 = np.polyfit(xs, ys, 1)
    out = np.zeros(cfg.n_bins, np.float32)
    for a in np.arange(np.log2(cut), np.log2(cfg.n_bins) + step, step):
        sel = (logf >= a) & (logf < a + step)
        if not sel.any():
            continue
        level = 10 * np.log10(rest_p[sel].mean() + 1e-20)
        cap = a0 + b * logf[sel].mean() + margin_db
        out[sel] = -max(0.0, level - cap) / 20 * np.log(10)
    return (out * prep.mask1).astype(np.float32)


# ViSQOL's 32 audio bands (Slaney's ERB spacing from 50 Hz to 24 kHz), their
# gammatone power responses on the runtime's STFT bins, and the offset that
# brings this estimate to ViSQOL's own spectrogram (-2.1 units, measured on
# restorations of held-out excerpts)
_EARQ, _MINBW = 9.26449, 24.7
_CF = (-(_EARQ * _MINBW) + np.exp(np.arange(1, 33) * (np.log(50.0 + _EARQ * _MINBW)
                                                      - np.log(24000.0 + _EARQ * _MINBW)) / 32)
       * (24000.0 + _EARQ * _MINBW))[::-1]
_GATE_FFT, _GATE_HOP, _GATE_CALIB = 1024, 512, -2.1


def mp3_cutoff(mp3: np.ndarray, n_fft: int = 1024, hop: int = 512) -> int:
    """The MP3's cutoff over the whole excerpt, in bins of an ``n_fft`` STFT
    (``n_fft // 2``: none)."""
    from mp3fix.spectral import detect_cutoff

    return detect_cutoff(np.abs(stft(mp3, n_fft, hop)[:, : n_fft // 2]) ** 2)


def gate(y: np.ndarray, mp3: np.ndarray, units: float, width: float = 3.0) -> np.ndarray:
    """``y`` with its band above the MP3's cutoff faded out where the mono mix's
    ViSQOL band level (smoothed over 7 frames) is under ``units``."""
    from scipy.ndimage import uniform_filter1d

    n = _GATE_FFT
    cut = mp3_cutoff(mp3, n, _GATE_HOP)
    if cut >= n // 2:
        return y
    f = np.arange(n // 2 + 1) * SR / n
    erb = _CF / _EARQ + _MINBW
    resp = (1 + ((f[None, :] - _CF[:, None]) / (1.019 * erb[:, None])) ** 2) ** -4.0  # (32, bins)
    w2 = float((np.hanning(n + 1)[:-1] ** 2).sum())
    spec = stft(y, n, _GATE_HOP)
    power = resp @ (np.abs(stft(y.mean(axis=0), n, _GATE_HOP)) ** 2) * 2 / (w2 * n)
    level = 5 * np.log10(uniform_filter1d(power, 7, axis=-1) + 1e-30) + _GATE_CALIB
    g = np.clip((level[np.argmax(resp, axis=0)] - (units - width)) / width, 0.0, 1.0)
    g[:cut] = 1.0
    return istft(spec * g[None].astype(np.float32), n, _GATE_HOP, y.shape[-1])


def band_copy_cap(y: np.ndarray, mp3: np.ndarray, db: float) -> np.ndarray:
    """``y`` with each bin above the MP3's cutoff no louder, in mean power over
    the excerpt and its channels, than band copy's plus ``db`` decibels."""
    n, hop = 1024, 512
    cut = mp3_cutoff(mp3, n, hop)
    if cut >= n // 2:
        return y
    spec = stft(y, n, hop)
    ly = 10 * np.log10((np.abs(spec) ** 2).mean(axis=(0, -1)) + 1e-20)
    lb = 10 * np.log10((np.abs(stft(band_copy(mp3), n, hop)) ** 2).mean(axis=(0, -1)) + 1e-20)
    excess = np.maximum(0.0, ly - lb - db)
    excess[:cut] = 0.0
    return istft(spec * (10 ** (-excess / 20))[None, :, None].astype(np.float32), n, hop, y.shape[-1])


def copy_fill(r: restore_module.Restorer, prep, bins: int, db: float):  # noqa: ANN001, ANN201
    """``prep`` (one variant, prepared without the model's dropout filling) with
    the dropouts in the ``bins`` under its cutoff filled from the band ``bins``
    lower, each bin matched to the 75th percentile of its own level, and its
    generator inputs remade from the filled band: ``fill`` without the model."""
    cfg = r.config
    lm, mask, z, _ = prep.inputs
    fill = min(bins, prep.cutoff - cfg.copy_width_bins)
    if fill <= 0:
        return prep
    lo = prep.cutoff - fill
    frames = prep.spec.shape[-1]
    mp3_low = prep.spec[:, : cfg.n_bins]
    src = copy_phase_sources(lo, cfg.n_bins, cfg.copy_width_bins)
    level = np.percentile(np.abs(mp3_low), 75, axis=-1)
    second = mp3_low[:, src, :] * (level / np.maximum(level[:, src], 1e-9))[:, :, None].astype(np.float32)
    filled = fill_holes(mp3_low.copy(), second, mp3_low, lo, prep.cutoff, db)
    prep.spec = prep.spec.copy()
    prep.spec[:, : cfg.n_bins] = filled
    lm = lm.copy()
    lm[:, 0, :, :frames] = log_magnitude(filled, cfg.log_floor)
    prep.inputs = (lm, mask, z, lm[:, :, copy_phase_sources(prep.cutoff, cfg.n_bins, cfg.copy_width_bins), :])
    return prep


def lowpassed(x: np.ndarray, hz: float) -> np.ndarray:
    """``x`` without what lies above ``hz`` (a 500 Hz cosine ramp centred on it, in the STFT)."""
    n, hop = 2048, 512
    f = np.arange(n // 2 + 1) * SR / n
    g = np.clip((hz + 250.0 - f) / 500.0, 0.0, 1.0)
    g = 0.5 - 0.5 * np.cos(np.pi * g)
    return istft(stft(x, n, hop) * g[None, :, None].astype(np.float32), n, hop, x.shape[-1]).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--change", action="append", required=True)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--split", default="val", choices=["train", "val", "test"])
    ap.add_argument("--tracks", type=int, default=9)
    ap.add_argument("--every", type=int, default=1, help="take every Nth track of the split")
    ap.add_argument("--track", action="append", help="only the tracks of these file names (repeatable)")
    ap.add_argument("--excerpts", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--kbps", default="16,32,64")
    ap.add_argument("--mono", action="store_true", help="mono MP3s of the excerpts' mid")
    ap.add_argument("--model", default=None)
    ap.add_argument("--candidate", default=None, help="a second ONNX model, restored by --change candidate:1")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--lowpass", type=float, default=None, help="low-pass every excerpt at HZ first")
    ap.add_argument("--keep-mp3-band", action="store_true",
                    help="the baseline without the shipped model's dropout filling under the cutoff")
    a = ap.parse_args()
    changes = [(spec, *parse_change(spec)) for spec in a.change]
    tracks = read_splits(a.data)[a.split][:: a.every][: a.tracks]
    if a.track:
        tracks = [t for t in tracks if Path(t).name in a.track]
    run, vq = Changed(a.model, hole_fill=not a.keep_mp3_band, candidate=a.candidate), Visqol()
    rows = []
    for i, path in enumerate(tracks):
        for ei, ref in enumerate(excerpts(path, a.seconds, a.excerpts)):
            if a.lowpass:
                ref = lowpassed(ref, a.lowpass)
            for kb in (int(k) for k in a.kbps.split(",")):
                dec, r, _ = twin_at(ref, kb, a.mono)
                row = {"track": Path(path).name, "excerpt": ei, "kbps": kb, "visqol": {}, "lsd": {}}
                for spec, kind, args in [("shipped", "", None)] + changes:
                    y = run(dec, kind, args)
                    row["visqol"][spec], row["lsd"][spec] = vq(r, y), lsd(r, y)
                rows.append(row)
        print(f"track {i + 1}/{len(tracks)} done", file=sys.stderr, flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    layout = "mono" if a.mono else "stereo"
    print(f"\n{len(tracks)} {a.split} tracks x {a.excerpts} x {a.seconds:g} s, {layout}, seed 0\n")
    print("| bitrate | change | ViSQOL | minus shipped (se) | LSD dB |")
    print("|---|---|---|---|---|")
    for kb in sorted({r["kbps"] for r in rows}):
        rr = [r for r in rows if r["kbps"] == kb]
        for spec in ["shipped"] + [c[0] for c in changes]:
            per = defaultdict(list)
            for r in rr:
                per[r["track"]].append(r["visqol"][spec] - r["visqol"]["shipped"])
            d = np.array([np.mean(v) for v in per.values()])
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            print(f"| {kb} | {spec} | {np.mean([r['visqol'][spec] for r in rr]):.3f} | {d.mean():+.3f} ({se:.3f}) "
                  f"| {np.mean([r['lsd'][spec] for r in rr]):.2f} |")


if __name__ == "__main__":
    main()
