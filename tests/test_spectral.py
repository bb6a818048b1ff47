"""Tests for mp3fix.spectral: STFT round trip, frame layout, cutoff detection."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import ellip, sosfilt

from mp3fix.spectral import (
    detect_cutoff,
    frame_reach,
    from_mid_side,
    hann,
    interior_frames,
    istft,
    log_magnitude,
    n_frames,
    stft,
    to_mid_side,
)
from tests.helpers import brickwall, white_noise

N_FFT, HOP, SR = 1024, 512, 44100
BINS = N_FFT // 2 + 1
# 511 and 1535 (n % hop == hop - 1) once lost their last samples: they lay only under
# the far tail of one window until n_frames became ceil(n / hop) + 1.
LENGTHS = [1, 511, 512, 1024, 1025, 1535, 44100]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("lead", [(), (2,), (2, 3)], ids=["mono", "stereo", "batch"])
def test_istft_inverts_stft(n: int, lead: tuple[int, ...]) -> None:
    x = white_noise(int(np.prod(lead, dtype=int)) * n, seed=n).reshape(lead + (n,))
    spec = stft(x, N_FFT, HOP)
    assert spec.shape == lead + (BINS, n_frames(n, HOP))
    assert spec.dtype == np.complex64
    y = istft(spec, N_FFT, HOP, n)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x)) < 1e-4


@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (512, 128), (256, 128)])
def test_round_trip_other_sizes(n_fft: int, hop: int) -> None:
    x = white_noise(5000, channels=2, seed=7)
    y = istft(stft(x, n_fft, hop), n_fft, hop, x.shape[-1])
    assert np.max(np.abs(y - x)) < 1e-4


def test_round_trip_is_not_trivially_zero() -> None:
    # guards the round-trip test itself: a spectrum that was tampered with must not invert to x
    x = white_noise(4096, seed=3)
    spec = stft(x, N_FFT, HOP)
    spec[..., 100, :] = 0
    assert np.max(np.abs(istft(spec, N_FFT, HOP, 4096) - x)) > 1e-3


@pytest.mark.parametrize("n,expected", [(0, 1), (1, 2), (511, 2), (512, 2), (1023, 3), (1024, 3), (44100, 88)])
def test_frame_count(n: int, expected: int) -> None:
    # ceil(n / hop) + 1: the last sample always lies under the body of a window
    assert n_frames(n, HOP) == expected == -(-n // HOP) + 1
    if n:
        assert stft(np.zeros(n, np.float32), N_FFT, HOP).shape == (BINS, expected)


def test_frames_are_centred() -> None:
    # an impulse at t*hop lands in frame t's centre: that frame has a flat magnitude
    n = 8 * HOP
    x = np.zeros(n, np.float32)
    x[3 * HOP] = 1.0
    mag = np.abs(stft(x, N_FFT, HOP))
    assert np.argmax(mag.sum(axis=0)) == 3
    np.testing.assert_allclose(mag[:, 3], 1.0, atol=1e-6)  # hann peak is 1 at the centre


def test_hann_is_periodic() -> None:
    w = hann(8)
    np.testing.assert_allclose(w, [0, 0.1464466, 0.5, 0.8535534, 1, 0.8535534, 0.5, 0.1464466], atol=1e-6)


def test_log_magnitude_floor() -> None:
    spec = np.array([0, 1, 1j * np.e], dtype=np.complex64)
    np.testing.assert_allclose(log_magnitude(spec, 1e-5), np.log([1e-5, 1 + 1e-5, np.e + 1e-5]), atol=1e-6)


def _power(x: np.ndarray) -> np.ndarray:
    return np.abs(stft(x, N_FFT, HOP)[..., : N_FFT // 2, :]) ** 2


@pytest.mark.parametrize("cutoff_hz", [5000.0, 11025.0, 16000.0])
def test_detect_cutoff_brickwall(cutoff_hz: float) -> None:
    x = brickwall(white_noise(2 * SR, seed=1), cutoff_hz, SR)
    expected = cutoff_hz / SR * N_FFT
    got = detect_cutoff(_power(x))
    assert abs(got - expected) <= 6, (got, expected)
    assert got >= expected, "a cutoff inside the intact band would overwrite real content"


def test_detect_cutoff_stereo_sosfilt() -> None:
    # a steep elliptic low-pass (what an MP3 encoder's filter looks like), stereo input
    # (order 16: down by 100 dB within 4 bins of the passband edge)
    sos = ellip(16, 0.1, 100, 5000, fs=SR, output="sos")
    x = sosfilt(sos, white_noise(2 * SR, channels=2, seed=2), axis=-1).astype(np.float32)
    edge = 5000 / SR * N_FFT
    got = detect_cutoff(_power(x))
    assert edge <= got <= edge + 6, got


def test_detect_cutoff_silence_and_full_band() -> None:
    bins = N_FFT // 2
    assert detect_cutoff(_power(np.zeros(SR, np.float32))) == bins
    assert detect_cutoff(_power(white_noise(SR, seed=4))) == bins
    assert detect_cutoff(_power(white_noise(SR, channels=2, seed=5))) == bins


def test_detect_cutoff_ignores_gentle_slope() -> None:
    # pink-ish noise falls steadily (~3 dB/octave): no cliff, nothing to restore
    spec = np.fft.rfft(white_noise(SR, seed=6).astype(np.float64))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spec / np.sqrt(f), n=SR).astype(np.float32)
    assert detect_cutoff(_power(pink)) == N_FFT // 2


@pytest.mark.parametrize("n", [1, 511, 512, 1024, 1025, 4096, 4097, 10 * 512 + 300])
def test_interior_frames_are_exactly_those_inside_the_signal(n: int) -> None:
    n_fft, hop = 1024, 512
    frames = n_frames(n, hop)
    inside = [t for t in range(frames) if t * hop - n_fft // 2 >= 0 and t * hop + n_fft // 2 <= n]
    got = list(range(frames))[interior_frames(n, n_fft, hop)]
    assert got == (inside or list(range(frames)))


def bass_heavy_with_gentle_cutoff(n: int, sr: int = 44100, seed: int = 0) -> np.ndarray:
    """Loud 1/f noise whose level ramps down 20 dB over 3.5-4.2 kHz, nothing above:
    a low-bitrate MP3's band edge, cut out of a song at non-zero samples."""
    x = np.random.default_rng(seed).standard_normal((2, n))
    spec = np.fft.rfft(x, axis=-1)
    f = np.fft.rfftfreq(n, 1 / sr)
    gain = 10 ** (np.where(f < 3500, 0.0, -20 * (f - 3500) / 700) / 20) / np.maximum(f, 30)
    gain[f > 4200] = 0
    x = np.fft.irfft(spec * gain, n=n, axis=-1)
    return (0.9 * x / np.abs(x).max()).astype(np.float32)


def _gentle_range() -> tuple[float, float]:
    return 3500 / 44100 * 1024, 4700 / 44100 * 1024  # the end of the ramp, + width/2


def test_edge_clicks_do_not_hide_a_gentle_cutoff() -> None:
    x = bass_heavy_with_gentle_cutoff(895 * 512)
    power = np.abs(stft(x, 1024, 512)[:, :512]) ** 2
    lo, hi = _gentle_range()
    # the edge frames hold the clicks of the cut-out ends: broadband, and loud
    # enough that with a plain mean over frames (one group) there is no cliff
    assert detect_cutoff(power, groups=1) == 512
    assert lo < detect_cutoff(power) < hi
    assert lo < detect_cutoff(power[..., interior_frames(x.shape[-1], 1024, 512)]) < hi


def test_click_inside_the_signal_does_not_hide_the_cutoff() -> None:
    # a gapless track cut out of an album: zeros, then music starting at full level
    x = bass_heavy_with_gentle_cutoff(600 * 512, seed=1)
    x = np.concatenate([np.zeros((2, 200 * 512), np.float32), x], axis=-1)
    lo, hi = _gentle_range()
    assert lo < detect_cutoff(_power(x)) < hi


def test_mostly_silent_chunk_keeps_its_cutoff() -> None:
    # 40 frames of music in 900 of near-silence (a fade-out's tail, an intro)
    x = bass_heavy_with_gentle_cutoff(40 * 512 + 1024, seed=2)
    quiet = 1e-7 * white_noise(900 * 512, channels=2, seed=3)
    lo, hi = _gentle_range()
    assert lo < detect_cutoff(_power(np.concatenate([quiet, x], axis=-1))) < hi


def test_cliff_in_the_noise_floor_is_not_the_cutoff() -> None:
    # a 32 kbit/s MP3 at 16 kHz resampled to 44.1: music below 5 kHz, the
    # codec's noise 80 dB down up to its Nyquist (8 kHz), then nothing
    music = brickwall(white_noise(2 * SR, seed=7), 5000.0, SR)
    noise = 1e-4 * brickwall(white_noise(2 * SR, seed=8), 8000.0, SR)
    got = detect_cutoff(_power(music + noise))
    edge = 5000 / SR * N_FFT
    assert edge <= got <= edge + 6, got


def test_encoder_holes_below_the_cutoff_are_not_a_cliff() -> None:
    # the band 3-4.2 kHz is missing from 60% of the frames (a low-bitrate
    # encoder dropping its top bands frame by frame): the cutoff stays at 4.2 kHz
    x = brickwall(white_noise(4 * SR, seed=9), 4200.0, SR)
    spec = stft(x, N_FFT, HOP)[:, : N_FFT // 2]
    holes = np.random.default_rng(10).random(spec.shape[-1]) < 0.6
    top = int(3000 / SR * N_FFT)
    spec[top:, holes] *= 1e-4
    got = detect_cutoff(np.abs(spec) ** 2)
    edge = 4200 / SR * N_FFT
    assert edge <= got <= edge + 6, got


# White noise is as loud at its edge as anywhere, so 80 dB below its loudest
# bin the Hann window's leakage reaches 15-17 bins past a brick wall; music
# near an encoder's cutoff is far quieter than its loudest bin.
LEAK = 20


def _inner_power(x: np.ndarray) -> np.ndarray:
    """As the runtime looks at a chunk: without the frames that overlap its ends."""
    return _power(x)[..., interior_frames(x.shape[-1], N_FFT, HOP)]


@pytest.mark.parametrize("edge_hz", [4200.0, 10000.0, 11000.0])
def test_frame_reach_is_the_highest_band_the_frames_fill(edge_hz: float) -> None:
    x = brickwall(white_noise(2 * SR, channels=2, seed=11), edge_hz, SR)
    edge = edge_hz / SR * N_FFT
    got = frame_reach(_inner_power(x))
    assert edge <= got <= edge + LEAK, got
    assert frame_reach(_inner_power(1e-3 * x)) == got  # the level does not matter


def test_frame_reach_sees_the_frames_that_keep_the_whole_band() -> None:
    # an encoder keeping 4.2 kHz in 30% of the frames and 3 kHz in the rest:
    # its cliff may lie at 3 kHz, the reach is 4.2 (a recording's own 3 kHz
    # edge would reach 3 kHz in every frame)
    x = brickwall(white_noise(4 * SR, seed=12), 4200.0, SR)
    spec = stft(x, N_FFT, HOP)[:, : N_FFT // 2][:, interior_frames(x.shape[-1], N_FFT, HOP)]
    holes = np.random.default_rng(13).random(spec.shape[-1]) < 0.7
    spec[int(3000 / SR * N_FFT):, holes] = 0
    got = frame_reach(np.abs(spec) ** 2)
    assert 4200 / SR * N_FFT <= got <= 4200 / SR * N_FFT + LEAK, got
    own = brickwall(white_noise(4 * SR, seed=12), 3000.0, SR)
    assert frame_reach(_inner_power(own)) <= 3000 / SR * N_FFT + LEAK < 4200 / SR * N_FFT


def test_frame_reach_ignores_clicks_and_silence() -> None:
    x = brickwall(white_noise(8 * SR, seed=14), 8000.0, SR)
    x[SR : SR + 3] = 0.9  # a click inside: two or three broadband frames of ~690
    x = np.concatenate([np.zeros(SR, np.float32), x])  # after a second of silence (and a step)
    edge = 8000 / SR * N_FFT
    assert edge <= frame_reach(_inner_power(x)) <= edge + LEAK
    assert frame_reach(_inner_power(x), percentile=100.0) > 500  # the click's frames reach Nyquist
    assert frame_reach(_power(np.zeros(SR, np.float32))) == 0


def test_mid_side_and_back_is_left_and_right_for_every_pair_of_rows() -> None:
    lr = white_noise(1000, channels=2, seed=4)
    ms = to_mid_side(lr)
    np.testing.assert_allclose(ms[0], (lr[0] + lr[1]) / 2, rtol=0, atol=1e-7)
    np.testing.assert_allclose(ms[1], (lr[0] - lr[1]) / 2, rtol=0, atol=1e-7)
    # rows of variants, each a (mid, side) pair, come back as (left, right) pairs in place
    other = white_noise(1000, channels=2, seed=5)
    back = from_mid_side(np.concatenate([ms, to_mid_side(other)]))
    np.testing.assert_allclose(back, np.concatenate([lr, other]), rtol=0, atol=1e-6)
