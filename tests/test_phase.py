"""Tests for mp3fix.phase: copy-phase source bins, band masking, Griffin-Lim updates."""

from __future__ import annotations

import numpy as np
import pytest

from mp3fix.model import band_mask
from mp3fix.phase import _full_bins, copy_phase_sources, restore_phase
from mp3fix.spectral import istft, stft
from tests.helpers import lowpass_noise, white_noise

N_FFT, HOP, SR = 1024, 512, 44100
BINS = 512  # bins the model works on (Nyquist excluded)
N = 16 * HOP
CUTOFF = 116  # ~5 kHz


@pytest.mark.parametrize("cutoff", [2, 3, 10, 63, 64, 65, 116, 117, 300, 510, 511])
@pytest.mark.parametrize("width", [64, 32, 7])
def test_copy_sources_below_cutoff_with_even_shift(cutoff: int, width: int) -> None:
    src = copy_phase_sources(cutoff, BINS, width)
    assert src.shape == (BINS,)
    np.testing.assert_array_equal(src[:cutoff], np.arange(cutoff))  # intact band: its own phase
    k = np.arange(cutoff, BINS)
    s = src[cutoff:]
    assert np.all(s < cutoff) and np.all(s >= 0)
    assert np.all((k - s) % 2 == 0)
    # the copied band is the one right below the cutoff, at most `width` wide
    assert np.all(s >= cutoff - width)


def test_copy_sources_tile_the_band() -> None:
    src = copy_phase_sources(100, 300, 64)
    # bins 100.. copy 36..99, then repeat with period 64
    np.testing.assert_array_equal(src[100:164], np.arange(36, 100))
    np.testing.assert_array_equal(src[164:228], np.arange(36, 100))


def _phase(mag: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, mag.shape).astype(np.float32)


def _inputs(channels: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(restored magnitude, MP3 spectrum, mask): the MP3 is low-passed noise, the
    "restored" magnitude is that of full-band noise."""
    mp3 = lowpass_noise(N, CUTOFF / N_FFT * SR - 200, SR, channels=channels, seed=seed)
    mp3_spec = stft(mp3, N_FFT, HOP)[..., :BINS, :]
    mag = np.abs(stft(white_noise(N, channels, seed=seed + 1), N_FFT, HOP)[..., :BINS, :])
    mask = band_mask(CUTOFF, BINS, 8)
    return mag, mp3_spec, mask


@pytest.mark.parametrize("strategy", ["copy", "random"])
@pytest.mark.parametrize("iters", [0, 3])
def test_masked_out_bins_keep_the_mp3(strategy: str, iters: int) -> None:
    mag, mp3_spec, mask = _inputs()
    spec = restore_phase(mag, mp3_spec, mask, CUTOFF, strategy, iters, N_FFT, HOP, N, _phase(mag, 0))
    assert spec.shape == mp3_spec.shape and spec.dtype == np.complex64
    keep = mask <= 0
    assert keep.sum() == CUTOFF - 8 + 1  # 0 up to and including cutoff - ramp
    np.testing.assert_array_equal(spec[..., keep, :], mp3_spec[..., keep, :])
    # and the restored band really is the new magnitude, not the MP3's
    full = mask >= 1
    np.testing.assert_allclose(np.abs(spec[..., full, :]), mag[..., full, :], rtol=1e-4, atol=1e-5)
    assert not np.allclose(np.abs(spec[..., full, :]), np.abs(mp3_spec[..., full, :]), atol=1e-3)


@pytest.mark.parametrize("strategy", ["copy", "random"])
def test_ramp_bins_keep_mp3_phase(strategy: str) -> None:
    mag, mp3_spec, mask = _inputs(seed=3)
    spec = restore_phase(mag, mp3_spec, mask, CUTOFF, strategy, 0, N_FFT, HOP, N, _phase(mag, 0))
    ramp = (mask > 0) & (mask < 1)
    assert ramp.sum() == 7
    np.testing.assert_allclose(np.abs(spec[..., ramp, :]), mag[..., ramp, :], rtol=1e-4, atol=1e-6)
    expect = mag[..., ramp, :] * np.exp(1j * np.angle(mp3_spec[..., ramp, :]))
    np.testing.assert_allclose(spec[..., ramp, :], expect, rtol=1e-4, atol=1e-5)


def test_copy_takes_phase_from_source_bins() -> None:
    mag, mp3_spec, mask = _inputs(seed=4)
    spec = restore_phase(mag, mp3_spec, mask, CUTOFF, "copy", 0, N_FFT, HOP, N, _phase(mag, 0))
    src = copy_phase_sources(CUTOFF, BINS)
    full = np.nonzero(mask >= 1)[0]
    expect = mag[..., full, :] * np.exp(1j * np.angle(mp3_spec[..., src[full], :]))
    np.testing.assert_allclose(spec[..., full, :], expect, rtol=1e-4, atol=1e-5)


def test_random_phase_is_seeded() -> None:
    mag, mp3_spec, mask = _inputs(seed=5)

    def run(seed: int) -> np.ndarray:
        return restore_phase(mag, mp3_spec, mask, CUTOFF, "random", 2, N_FFT, HOP, N, _phase(mag, seed))

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.allclose(run(1), run(2))


def test_random_with_iterations_keeps_requested_magnitude() -> None:
    mag, mp3_spec, mask = _inputs(channels=1, seed=6)
    full = mask >= 1
    spec = restore_phase(mag, mp3_spec, mask, CUTOFF, "random", 8, N_FFT, HOP, N, _phase(mag, 0))
    np.testing.assert_allclose(np.abs(spec[..., full, :]), mag[..., full, :], rtol=1e-4, atol=1e-5)


def _inconsistency(spec: np.ndarray, full: np.ndarray) -> float:
    """How far the restored band is from the spectrum of the signal it makes."""
    x = istft(_full_bins(spec, N_FFT), N_FFT, HOP, N)
    again = stft(x, N_FFT, HOP)[..., :BINS, :]
    return float(np.linalg.norm(again[..., full, :] - spec[..., full, :]) / np.linalg.norm(spec[..., full, :]))


def test_griffin_lim_makes_the_spectrum_more_consistent() -> None:
    mag, mp3_spec, mask = _inputs(channels=1, seed=7)
    full = mask >= 1

    def run(iters: int) -> np.ndarray:
        return restore_phase(mag, mp3_spec, mask, CUTOFF, "random", iters, N_FFT, HOP, N, _phase(mag, 0))

    assert _inconsistency(run(10), full) < 0.9 * _inconsistency(run(0), full)


def test_random_needs_a_phase() -> None:
    mag, mp3_spec, mask = _inputs(channels=1)
    with pytest.raises(ValueError, match="random_phase"):
        restore_phase(mag, mp3_spec, mask, CUTOFF, "random", 0, N_FFT, HOP, N, None)


def test_unknown_strategy() -> None:
    mag, mp3_spec, mask = _inputs(channels=1)
    with pytest.raises(ValueError, match="unknown phase strategy"):
        restore_phase(mag, mp3_spec, mask, CUTOFF, "zero", 0, N_FFT, HOP, N, _phase(mag, 0))


def test_full_bins_appends_nyquist() -> None:
    spec = np.ones((2, BINS, 5), np.complex64)
    full = _full_bins(spec, N_FFT)
    assert full.shape == (2, N_FFT // 2 + 1, 5)
    assert np.all(full[:, BINS:] == 0) and np.all(full[:, :BINS] == 1)
    assert _full_bins(full, N_FFT) is full
