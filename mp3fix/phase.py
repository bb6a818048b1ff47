"""Phase for the restored band.

The MP3's own phase is kept wherever it still carries the signal (the intact
band and the cutoff ramp). Above the cutoff the MP3 has no usable phase, and
three strategies are offered:

- ``copy`` (default): take the phase of a band of even width ``W`` just below
  the cutoff, repeated upwards (as spectral band replication does). With
  hop = n_fft/2 a stationary partial advances by ``pi*k`` per frame in bin ``k``,
  so an even bin shift keeps phase progression coherent across frames, and a
  transient's linear phase slope (its time position) is preserved. Cost: one
  gather.
- ``random``: uniform random phase (seeded). Noise-like, smears transients.
- either followed by ``iters`` Griffin-Lim iterations that update only the
  restored band's phase (magnitudes and the intact band never change).
"""

from __future__ import annotations

import numpy as np

from mp3fix.spectral import istft, stft

STRATEGIES = ("copy", "random")


def copy_phase_sources(cutoff: int, n_bins: int, width: int = 64) -> np.ndarray:
    """Source bin for each bin >= cutoff: the band below it, tiled with an even period."""
    w = min(width, cutoff - cutoff % 2)
    w -= w % 2
    src = np.arange(n_bins)
    if w <= 0:
        return src
    k = np.arange(cutoff, n_bins)
    src[cutoff:] = cutoff - w + (k - cutoff) % w
    return src


def restore_phase(
    mag: np.ndarray,
    mp3_spec: np.ndarray,
    mask: np.ndarray,
    cutoff: int,
    strategy: str,
    iters: int,
    n_fft: int,
    hop: int,
    length: int,
    random_phase: np.ndarray | None = None,
    copy_width: int = 64,
) -> np.ndarray:
    """Complex spectrum from restored magnitude ``mag`` (..., bins, frames).

    ``mask`` (bins,) is the band mask; bins where it is 0 keep the MP3 exactly.
    ``random_phase`` (same shape as ``mag``) is required for ``random``; the
    caller draws it per absolute frame so that overlapping chunks agree.
    """
    bins = mag.shape[-2]
    full = mask >= 1.0
    # Work with unit phasors (X / |X|) rather than angles: no arctan2 and no
    # complex exponential over the whole spectrogram.
    unit = unit_phasor(mp3_spec)
    if strategy == "copy":
        src = copy_phase_sources(cutoff, bins, copy_width)
        unit[..., full, :] = unit[..., src[full], :]
    elif strategy == "random":
        if random_phase is None:
            raise ValueError("the random strategy needs random_phase")
        unit[..., full, :] = np.exp(1j * random_phase[..., full, :])
    else:
        raise ValueError(f"unknown phase strategy {strategy!r}")
    spec = (mag * unit).astype(np.complex64, copy=False)
    keep = mask <= 0.0
    spec[..., keep, :] = mp3_spec[..., keep, :]
    for _ in range(iters):
        x = istft(_full_bins(spec, n_fft), n_fft, hop, length)
        est = stft(x, n_fft, hop)[..., :bins, :]
        spec[..., full, :] = mag[..., full, :] * unit_phasor(est[..., full, :])
    return spec


def unit_phasor(spec: np.ndarray) -> np.ndarray:
    """spec / |spec| as complex64, 1 where spec is 0 (the phase np.angle gives 0)."""
    mag = np.abs(spec)
    out = np.ones(spec.shape, dtype=np.complex64)
    np.divide(spec, mag, out=out, where=mag > 0)  # a masked ufunc, not a boolean gather
    return out


def _full_bins(spec: np.ndarray, n_fft: int) -> np.ndarray:
    """Append zero bins up to n_fft//2+1 (the model works on fewer bins)."""
    need = n_fft // 2 + 1 - spec.shape[-2]
    if need <= 0:
        return spec
    return np.concatenate([spec, np.zeros(spec.shape[:-2] + (need, spec.shape[-1]), spec.dtype)], axis=-2)
