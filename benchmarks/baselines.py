"""Non-learned bandwidth extensions: the bar a learned restorer has to clear.

Both work on the decoded MP3 at 44.1 kHz, detect the codec cutoff the same way
the runtime does, and leave everything below it untouched.

- ``noise_fill``: random-phase noise above the cutoff, at each frame's level of
  the ~500 Hz just below the cutoff, rolled off at -12 dB/octave.
- ``band_copy``: the band just below the cutoff copied upwards (magnitude and
  phase, an even bin shift, as spectral band replication does) with an
  envelope decaying 6 dB per copied band.
"""

from __future__ import annotations

import numpy as np

from mp3fix.spectral import detect_cutoff, istft, stft

N_FFT = 1024
HOP = 512
SR = 44100


def _cutoff(spec: np.ndarray) -> int:
    return detect_cutoff(np.abs(spec[:, : N_FFT // 2]) ** 2)


def noise_fill(x: np.ndarray, seed: int = 0) -> np.ndarray:
    spec = stft(x, N_FFT, HOP)
    bins = spec.shape[-2]
    c = _cutoff(spec)
    if c >= bins - 24:
        return x.copy()
    width = max(2, int(round(500 / (SR / N_FFT))))
    ref = (np.abs(spec[:, max(0, c - width) : c]) ** 2).mean(axis=1, keepdims=True)  # (C,1,T)
    k = np.arange(c, bins)
    rolloff = (k / c) ** -4.0  # -12 dB per octave in level
    power = ref * rolloff[None, :, None]
    rng = np.random.default_rng(seed)
    phase = rng.uniform(-np.pi, np.pi, size=power.shape)
    out = spec.copy()
    out[:, c:, :] = np.sqrt(power) * np.exp(1j * phase)
    return istft(out, N_FFT, HOP, x.shape[-1])


def band_copy(x: np.ndarray, width_hz: float = 2000.0) -> np.ndarray:
    spec = stft(x, N_FFT, HOP)
    bins = spec.shape[-2]
    c = _cutoff(spec)
    if c >= bins - 24:
        return x.copy()
    w = min(int(width_hz / (SR / N_FFT)), c)
    w -= w % 2
    if w <= 0:
        return x.copy()
    k = np.arange(c, bins)
    src = c - w + (k - c) % w
    gain = 10 ** (-6.0 * ((k - c) // w + 1) / 20)
    out = spec.copy()
    out[:, c:, :] = spec[:, src, :] * gain[None, :, None]
    return istft(out, N_FFT, HOP, x.shape[-1])
