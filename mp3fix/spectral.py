"""STFT and inverse STFT in plain numpy, plus the cutoff detector.

Everything here is a pure function of arrays and explicit parameters. The
spectral sizes, the log floor and the cliff's drop and width come from the
model's sidecar (see ``mp3fix.model``); the cutoff detector's silence (50 dB)
and floor (70 dB) thresholds, its runs of 8 groups of 8 frames and
``frame_reach``'s settings are this module's defaults.

Conventions: frames are centred (frame ``t`` is centred on sample ``t * hop``),
the signal is zero-padded by ``n_fft // 2`` on both sides, the window is a
periodic Hann, and the inverse divides by the summed squared window, so
``istft(stft(x))`` reproduces ``x`` to float precision wherever the window sum is
non-zero (everywhere, for hop <= n_fft / 2).
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view


def hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window of length ``n_fft`` (float32)."""
    n = np.arange(n_fft, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)).astype(np.float32)


def n_frames(n_samples: int, hop: int) -> int:
    """Number of centred frames for a signal of ``n_samples``: enough that the
    last sample lies under the body of a window, not only under the far tail of
    one (where the squared window is too small to divide by)."""
    return -(-n_samples // hop) + 1


def stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Complex STFT of ``x`` with shape (..., samples) -> (..., n_fft//2+1, frames)."""
    x = np.asarray(x, dtype=np.float32)
    pad = n_fft // 2
    lead = x.shape[:-1]
    n = x.shape[-1]
    frames = n_frames(n, hop)
    total = (frames - 1) * hop + n_fft
    padded = np.zeros(lead + (total,), dtype=np.float32)
    take = min(n, total - pad)
    padded[..., pad : pad + take] = x[..., :take]
    view = sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :][..., :frames, :]
    # scipy.fft transforms float32 in single precision (numpy.fft works in double):
    # ~5x faster here, and the result is complex64 without a cast.
    spec = sfft.rfft(view * hann(n_fft), axis=-1)
    return np.ascontiguousarray(np.swapaxes(spec, -1, -2), dtype=np.complex64)


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Inverse of :func:`stft`: (..., bins, frames) -> (..., length) float32."""
    window = hann(n_fft)
    frames = spec.shape[-1]
    lead = spec.shape[:-2]
    chunks = sfft.irfft(np.swapaxes(spec, -1, -2).astype(np.complex64, copy=False), n=n_fft, axis=-1)
    chunks *= window
    total = (frames - 1) * hop + n_fft
    wsq = window * window
    if n_fft % hop == 0:
        # Cut every frame into n_fft/hop pieces of one hop; piece j of frame t
        # lands on output block t + j, so each j is one vectorised add of whole
        # contiguous rows (no strided gathers).
        per = n_fft // hop
        pieces = chunks.reshape(lead + (frames, per, hop))
        blocks = np.zeros(lead + (frames + per - 1, hop), dtype=np.float32)
        wblocks = np.zeros((frames + per - 1, hop), dtype=np.float32)
        wpieces = wsq.reshape(per, hop)
        for j in range(per):
            blocks[..., j : j + frames, :] += pieces[..., :, j, :]
            wblocks[j : j + frames] += wpieces[j]
        out = blocks.reshape(lead + (total,))
        norm = wblocks.reshape(total)
    else:  # pragma: no cover - every shipped model uses hop dividing n_fft
        out = np.zeros(lead + (total,), dtype=np.float32)
        norm = np.zeros(total, dtype=np.float32)
        for t in range(frames):
            out[..., t * hop : t * hop + n_fft] += chunks[..., t, :]
            norm[t * hop : t * hop + n_fft] += wsq
    pad = n_fft // 2
    out = out[..., pad : pad + length]
    norm = norm[pad : pad + length]
    np.maximum(norm, 1e-8, out=norm)
    result = np.zeros(lead + (length,), dtype=np.float32)
    valid = out.shape[-1]
    result[..., :valid] = out / norm[:valid]
    return result


def interior_frames(n_samples: int, n_fft: int, hop: int) -> slice:
    """The frames of :func:`stft` whose window lies wholly inside the signal.

    The others overlap the zero padding, so wherever the signal does not start
    or end at zero they hold the click of that step: broadband energy that
    fills in the empty band above a codec's cutoff (by 30-40 dB on bass-heavy
    music). :func:`detect_cutoff` is built to see through a few such frames;
    leaving them out costs nothing and spares it the work. All frames when no
    frame is wholly inside.
    """
    frames = n_frames(n_samples, hop)
    first = -(-(n_fft // 2) // hop)  # t * hop - n_fft/2 >= 0
    last = (n_samples - n_fft // 2) // hop  # t * hop + n_fft/2 <= n_samples
    if last < first:
        return slice(0, frames)
    return slice(first, min(last, frames - 1) + 1)


def to_mid_side(x: np.ndarray) -> np.ndarray:
    """(2, ...) left and right -> (2, ...) mid (L + R) / 2 and side (L - R) / 2."""
    return np.stack([0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1])])


def from_mid_side(x: np.ndarray) -> np.ndarray:
    """(2k, ...) rows, k pairs of mid and side -> the same rows as left and
    right (the inverse of :func:`to_mid_side`, pair by pair)."""
    pairs = x.reshape(-1, 2, *x.shape[1:])
    return np.stack([pairs[:, 0] + pairs[:, 1], pairs[:, 0] - pairs[:, 1]], axis=1).reshape(x.shape)


def log_magnitude(spec: np.ndarray, floor: float) -> np.ndarray:
    """Natural-log magnitude with an additive floor (the model's input scale)."""
    return np.log(np.abs(spec) + floor).astype(np.float32)


def detect_cutoff(power: np.ndarray, drop_db: float = 20.0, width: int = 6, active_db: float = 50.0,
                  floor_db: float = 70.0, groups: int = 8, group_frames: int = 8) -> int:
    """First bin above the codec's low-pass, from a power spectrogram (..., bins, frames).

    A codec's low-pass is a cliff: the typical level falls by more than
    ``drop_db`` between the ``width`` bins below a point and the ``width`` bins
    above it, far steeper than any musical spectrum falls. The cutoff is the end
    of the highest such cliff whose top is within ``floor_db`` of the loudest
    bin's level: lower ones are in the noise floor (the resampler's own edge at
    the MP3's Nyquist, 100 dB down, is one). A level threshold would not do: the
    analysis window's leakage floor (~-70 dB for Hann) can sit above any fixed
    threshold.

    The typical level of a bin is a median of means: the frames within
    ``active_db`` of the loudest one (silence left out) are cut into up to
    ``groups`` runs of at least ``group_frames``, each run's power is averaged
    over its frames and the channels, and each bin takes the median over runs.
    A plain mean would let a few frames of broadband energy (the click where a
    file starts or stops abruptly, a glitch) fill the empty band above the
    cutoff by 30-40 dB and hide the cliff; a median over frames would take the
    encoder's frame-by-frame holes below its cutoff for a cliff.
    Returns ``bins`` (nothing to restore) for silence or when there is no cliff.
    """
    bins, t = power.shape[-2], power.shape[-1]
    p = np.moveaxis(power, -2, 0).reshape(bins, -1, t)  # (bins, channels, frames)
    if bins < 2 * width + 1 or p.size == 0 or float(p.mean(axis=(1, 2)).max()) <= 1e-12:
        return bins
    energy = p.sum(axis=(0, 1))
    p = p[:, :, energy >= energy.max() * 10.0 ** (-active_db / 10.0)]
    n = max(1, min(groups, p.shape[-1] // group_frames))
    mean = np.median(np.stack([g.mean(axis=(1, 2)) for g in np.array_split(p, n, axis=-1)]), axis=0)
    level = 10.0 * np.log10(mean + 1e-20)
    c = np.concatenate([[0.0], np.cumsum(level)])
    k = np.arange(width, bins - width + 1)
    below = (c[k] - c[k - width]) / width  # mean level of the bins below each point
    drop = below - (c[k + width] - c[k]) / width
    cand = np.nonzero((drop > drop_db) & (below > level.max() - floor_db))[0]
    if cand.size == 0:
        return bins
    last = first = int(cand[-1])
    while first > 0 and drop[first - 1] > drop_db:
        first -= 1
    centre = int(k[first + int(np.argmax(drop[first : last + 1]))])
    return min(bins, centre + width // 2)


def frame_reach(power: np.ndarray, below_db: float = 80.0, active_db: float = 50.0,
                percentile: float = 99.0, ignore_above: int | None = None) -> int:
    """How high the frames reach: first bin above their content, from a power
    spectrogram (..., bins, frames).

    A frame reaches the highest bin within ``below_db`` of its own loudest bin
    (channels summed); the result is the ``percentile`` of that over the frames
    within ``active_db`` of the loudest frame, plus one. An encoder's low-pass
    is ragged: its cliff (:func:`detect_cutoff`) scatters with the music and
    the bits it has, but in some frames it keeps its whole band, so the frames
    that reach highest show the band it keeps. A recording that ends lower
    reaches no higher than its own edge in any frame (a 64 kbit/s MP3 keeps
    11 kHz: the chunks of full-band music reached 10.7-11.4 kHz, all but 2 of
    704, those of originals that end at 10 kHz 9.8-10.1; ``benchmarks/edges.py``
    and :mod:`mp3fix.codec`). The percentile, not the maximum, so that a
    click's broadband frame does not count; frames that reach beyond
    ``ignore_above`` (a bin far above any the encoder kept) are left out
    first: a click or the step where a file starts or stops abruptly reaches
    Nyquist, and in a chunk with few frames (a file's last) two such frames
    would decide the percentile. Returns 0 for silence, ``bins`` when every
    frame is left out.
    """
    bins, t = power.shape[-2], power.shape[-1]
    p = np.moveaxis(power, -2, 0).reshape(bins, -1, t).sum(axis=1)  # (bins, frames)
    if p.size == 0:
        return 0
    energy = p.sum(axis=0)
    if float(energy.max()) <= 1e-12:
        return 0
    p = p[:, energy >= energy.max() * 10.0 ** (-active_db / 10.0)]
    above = p >= p.max(axis=0) * 10.0 ** (-below_db / 10.0)
    top = bins - np.argmax(above[::-1], axis=0)  # first bin above each frame's content
    if ignore_above is not None:
        top = top[top <= ignore_above]
        if top.size == 0:
            return bins
    return int(np.ceil(np.percentile(top, percentile)))
