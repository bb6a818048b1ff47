"""The model's sidecar: every setting the runtime needs, read from ``NAME.onnx.json``.

Spectral sizes, chunk sizes, input and output names and the checksum all live in
the sidecar next to the ONNX file (as piper does); the runtime reads them from
here and nowhere else. ``ModelConfig()`` with no arguments gives the settings new
models are trained with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mp3fix.errors import ModelError

DEFAULT_MODEL = "mp3fix-gan"
DEFAULT_SEED = 0  # a plain run is deterministic


@dataclass
class ModelConfig:
    name: str = DEFAULT_MODEL
    sample_rate: int = 44100
    n_fft: int = 1024
    hop: int = 512
    window: str = "hann"
    n_bins: int = 512  # bins fed to the model; the Nyquist bin is passed through
    log_floor: float = 1e-5
    cutoff_drop_db: float = 20.0
    cutoff_width: int = 6
    full_band_margin_bins: int = 24  # a cutoff this close to n_bins: nothing to restore
    mask_ramp_bins: int = 8
    z_channels: int = 2
    z_bins: int = 512  # rows of z per channel: n_bins for a U-Net, one per band for a band generator
    # The last ``z_global_channels`` of z hold one value for the whole file
    # (``restore.global_z``: 0 for the first variant, then a ladder of normal
    # quantiles on either side), not new noise per band and frame: a generator
    # trained on them (``train.py --level-z``) puts its doubt about the overall
    # level of the highs there, so that variants differ in brightness. 0: none.
    # ``z_global_brighter``: +1 if a larger value makes the highs louder, -1
    # if quieter (measured at export), so that the 2nd variant is the darker.
    z_global_channels: int = 0
    z_global_brighter: float = 1.0
    time_multiple: int = 32
    segment_frames: int = 768
    overlap_frames: int = 16
    context_frames: int = 64
    train_crop_frames: int = 128
    copy_width_bins: int = 64  # band below the cutoff that is replicated upwards
    # level calibration of the restored band: [cutoff Hz, dB] points, linear in
    # between and flat beyond the ends (see ``extension_gain``); empty: none
    extension_gain_db: list[list[float]] = field(default_factory=list)
    # and by frequency, for chunks whose cutoff lies at or above
    # ``extension_shelf_from_hz``: [Hz, dB] points, linear in between and flat
    # beyond the ends (see ``extension_shelf``), added to the first; empty: none
    extension_shelf_db: list[list[float]] = field(default_factory=list)
    extension_shelf_from_hz: float = 0.0
    # Dropout filling under the cutoff (see ``hole_fill_bins``): an encoder that
    # runs short of bits drops its top scalefactor bands frame by frame, so the
    # band it kept has holes, and the band copied upwards above the cutoff has
    # them too. Where the cutoff lies within ``hole_fill_hz``, the generator
    # first runs as if the cutoff were ``hole_fill_bins`` lower (at most down
    # to ``copy_width_bins``), a bin of that band where the MP3 is more than
    # ``hole_fill_db`` below this restoration takes the restoration's, and the
    # band above the cutoff is then restored from the filled band. 0 bins: off.
    hole_fill_bins: int = 0
    hole_fill_db: float = 30.0
    hole_fill_hz: list[float] = field(default_factory=lambda: [0.0, 0.0])
    input_names: list[str] = field(default_factory=lambda: ["logmag", "mask", "z", "copied"])
    output_names: list[str] = field(default_factory=lambda: ["restored"])
    sha256: str = ""
    status: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    # sizes in samples, all whole hops so frames line up across chunk borders
    @property
    def segment(self) -> int:
        return self.segment_frames * self.hop

    @property
    def overlap(self) -> int:
        return self.overlap_frames * self.hop

    @property
    def context(self) -> int:
        return self.context_frames * self.hop


def band_mask(cutoff: int, n_bins: int, ramp: int) -> np.ndarray:
    """(n_bins,) float32: 0 below ``cutoff - ramp``, rising linearly to 1 at ``cutoff``."""
    k = np.arange(n_bins, dtype=np.float32)
    if ramp <= 0:
        return (k >= cutoff).astype(np.float32)
    return np.clip((k - (cutoff - ramp)) / ramp, 0.0, 1.0).astype(np.float32)


def extension_gain(cutoff: int, cfg: ModelConfig) -> float:
    """Natural-log gain for the restored band of a chunk whose cutoff is bin ``cutoff``.

    ``cfg.extension_gain_db`` holds [cutoff Hz, dB] points chosen after
    training on tracks the test set does not hold (``docs/model-card.md``); the
    gain is interpolated linearly in Hz and held flat beyond the first and last
    points. No points: no gain.
    """
    if not cfg.extension_gain_db:
        return 0.0
    return float(_log_gain(cfg.extension_gain_db, cutoff * cfg.sample_rate / cfg.n_fft))


def _log_gain(points: list[list[float]], hz: float | np.ndarray) -> np.ndarray:
    """Natural-log gain at ``hz`` from [Hz, dB] ``points`` (any order), linear in
    Hz between them and flat beyond the first and last."""
    at, db = zip(*sorted(points), strict=True)
    return np.interp(hz, at, db) / 20.0 * np.log(10.0)


def extension_shelf(cutoff: int, cfg: ModelConfig) -> np.ndarray:
    """(n_bins,) float32 natural-log gains by frequency for the restored band of
    a chunk whose cutoff is bin ``cutoff``.

    ``cfg.extension_shelf_db`` holds [Hz, dB] points, interpolated linearly in
    Hz at each bin's centre and held flat beyond the first and last points; it
    applies where the cutoff's frequency is at least
    ``cfg.extension_shelf_from_hz``, on top of ``extension_gain``, and only
    where the band mask is (the MP3's own bins are never touched). No points,
    or a lower cutoff: all zero.
    """
    if not cfg.extension_shelf_db or cutoff * cfg.sample_rate / cfg.n_fft < cfg.extension_shelf_from_hz:
        return np.zeros(cfg.n_bins, np.float32)
    return _log_gain(cfg.extension_shelf_db, np.arange(cfg.n_bins) * cfg.sample_rate / cfg.n_fft).astype(np.float32)


def hole_fill_bins(cutoff: int, cfg: ModelConfig) -> int:
    """How many bins under cutoff bin ``cutoff`` get their dropouts filled
    (``cfg.hole_fill_bins`` where the cutoff's frequency lies within
    ``cfg.hole_fill_hz``, else 0), but never so many that the band left below
    has less than ``cfg.copy_width_bins`` to copy from (at a 3.7 kHz cutoff,
    86 bins, that leaves 22)."""
    lo, hi = cfg.hole_fill_hz
    f = cutoff * cfg.sample_rate / cfg.n_fft
    if cfg.hole_fill_bins <= 0 or not lo <= f <= hi:
        return 0
    return max(0, min(cfg.hole_fill_bins, cutoff - cfg.copy_width_bins))


def fill_holes(out: np.ndarray, fill: np.ndarray, mp3: np.ndarray, lo: int, hi: int, db: float) -> np.ndarray:
    """``out`` (..., bins, frames) complex with bins ``lo:hi`` taken from ``fill``
    wherever the MP3 ``mp3`` is more than ``db`` below it there (a dropout);
    in place, and returned."""
    band = fill[..., lo:hi, :]
    hole = np.abs(mp3[..., lo:hi, :]) < np.abs(band) * np.float32(10.0 ** (-db / 20.0))
    out[..., lo:hi, :] = np.where(hole, band, out[..., lo:hi, :])
    return out


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_model_path(name: str = DEFAULT_MODEL) -> Path:
    """Path of a shipped model: ``mp3fix/models/NAME.onnx`` in an installed wheel
    (the top-level ``models/`` folder is mapped there at build time), or the
    top-level ``models/`` of a source checkout."""
    installed = Path(str(resources.files("mp3fix"))) / "models" / f"{name}.onnx"
    if installed.exists():
        return installed
    return Path(__file__).resolve().parent.parent / "models" / f"{name}.onnx"


def load_config(onnx_path: Path, verify: bool = True) -> ModelConfig:
    """Read the sidecar next to ``onnx_path``; check the checksum if asked."""
    sidecar = onnx_path.with_name(onnx_path.name + ".json")
    if not onnx_path.exists():
        raise ModelError(f"model not found: {onnx_path}")
    if not sidecar.exists():
        raise ModelError(f"model sidecar not found: {sidecar}")
    try:
        cfg = ModelConfig.from_dict(json.loads(sidecar.read_text()))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"model sidecar {sidecar} is not valid: {exc}") from exc
    if not 0 <= cfg.z_global_channels <= cfg.z_channels:
        raise ModelError(f"model sidecar {sidecar} is not valid: z_global_channels {cfg.z_global_channels} "
                         f"is not between 0 and z_channels {cfg.z_channels}")
    if verify and cfg.sha256 and sha256_of(onnx_path) != cfg.sha256:
        raise ModelError(f"model {onnx_path} does not match the checksum in its sidecar")
    return cfg


def resolve_model(model: str | Path | None) -> Path:
    """A model argument -> ONNX path: None is the shipped default, a name is a
    shipped model, anything else is a path."""
    if model is None:
        model = DEFAULT_MODEL
    p = Path(model)
    if p.suffix == ".onnx" or p.exists():
        if not p.exists():
            raise ModelError(f"model not found: {p}")
        return p
    path = shipped_model_path(str(model))
    if not path.exists():
        raise ModelError(f"no shipped model named {model!r} ({path} is missing)")
    return path
