"""Tests for mp3fix.restore with the tiny test models in tests/data.

identity.onnx returns its input log-magnitude, so the whole pipeline must give
back what it got; fill.onnx adds z-dependent energy above the detected cutoff
only, so seeds, variants and the untouched intact band can be checked exactly.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal.windows import tukey

from mp3fix import audio, restore
from mp3fix.errors import DecodeError, OutputError
from mp3fix.restore import Z_BLOCK, Restorer, draw_z, global_z
from mp3fix.runtime import Generator
from mp3fix.spectral import detect_cutoff, interior_frames
from tests.helpers import (
    FILL_MODEL,
    IDENTITY_MODEL,
    brickwall,
    encode,
    fake_cuda_that_falls_back,
    lowpass_noise,
    stft_mag,
    white_noise,
    write_wav,
    xcorr_lag,
)

SR = 44100
EDGE_HZ = 5000.0


@pytest.fixture(scope="module")
def identity() -> Restorer:
    return Restorer(IDENTITY_MODEL, device="cpu", threads=1)


@pytest.fixture(scope="module")
def fill() -> Restorer:
    return Restorer(FILL_MODEL, device="cpu", threads=1)


def faded_lowpass(n: int, channels: int = 2, seed: int = 0, edge_hz: float = EDGE_HZ) -> np.ndarray:
    """Low-passed noise with raised-cosine fades at both ends.

    The fades matter: a track that starts or stops abruptly has broadband energy
    in its first and last frames, above any cutoff, which the restorer treats as
    band to restore (and the copy-phase strategy rewrites).
    """
    x = lowpass_noise(n, edge_hz, SR, channels=channels, seed=seed)
    fade = min(4096, n // 4)
    if fade:
        ramp = np.sin(np.linspace(0, np.pi / 2, fade, dtype=np.float32)) ** 2
        x[..., :fade] *= ramp
        x[..., n - fade :] *= ramp[::-1]
    return x


def test_test_models_use_small_chunks(identity: Restorer, fill: Restorer) -> None:
    for r in (identity, fill):
        assert r.config.segment == 64 * 512 and r.config.overlap == 8 * 512 and r.config.context == 16 * 512
        assert r.sample_rate == SR


# ---------------------------------------------------------------- identity round trip


def _lengths() -> list[int]:
    seg = 64 * 512  # the test models' segment (checked above)
    return [1, 1000, seg - 1, seg, seg + 1, 4 * seg + 1234]


@pytest.mark.parametrize("n", _lengths())
@pytest.mark.parametrize("channels", [1, 2])
def test_identity_round_trip(identity: Restorer, n: int, channels: int) -> None:
    x = faded_lowpass(n, channels, seed=n)
    (y,) = identity.restore(x, SR)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x)) < 1e-4


def test_identity_round_trip_of_1d_input(identity: Restorer) -> None:
    x = faded_lowpass(20000, channels=1, seed=3)[0]
    (y,) = identity.restore(x, SR)
    assert y.shape == (1, x.size)
    assert np.max(np.abs(y[0] - x)) < 1e-4


def test_identity_full_band_is_exact(identity: Restorer) -> None:
    # nothing to restore: every chunk is passed through untouched (the crossfade
    # of two equal copies rounds in the last bit, nothing more)
    x = (0.1 * np.random.default_rng(1).standard_normal((2, 3 * 32768))).astype(np.float32)
    np.testing.assert_allclose(identity.restore(x, SR)[0], x, rtol=0, atol=1e-7)


def test_empty_input(identity: Restorer) -> None:
    out = identity.restore(np.zeros((2, 0), np.float32), SR, variants=2)
    assert len(out) == 2 and all(o.shape == (2, 0) for o in out)


@pytest.mark.parametrize("rate,n", [(16000, 16000), (16000, 12345), (22050, 22051), (48000, 30000)])
def test_other_input_rate_is_resampled(identity: Restorer, rate: int, n: int) -> None:
    x = lowpass_noise(n, 0.3 * rate, rate, channels=2, seed=rate)
    (y,) = identity.restore(x, rate)
    assert y.shape[0] == 2
    assert abs(y.shape[1] - round(n * SR / rate)) <= 1
    # still the same audio, not shifted
    up = np.interp(np.arange(y.shape[1]) * rate / SR, np.arange(n), x[0])
    assert xcorr_lag(up, y[0], 200) == 0


# ---------------------------------------------------------------- fill: seeds, variants, intact band


@pytest.fixture(scope="module")
def fill_input() -> np.ndarray:
    return faded_lowpass(3 * 32768 + 77, channels=2, seed=1)


@pytest.fixture(scope="module")
def fill_outputs(fill: Restorer, fill_input: np.ndarray) -> list[np.ndarray]:
    return fill.restore(fill_input, SR, seed=0, variants=3)


def _cutoff(x: np.ndarray) -> int:
    return detect_cutoff(stft_mag(x)[..., :512, :] ** 2)


def test_fill_adds_energy_above_cutoff(fill_input: np.ndarray, fill_outputs: list[np.ndarray]) -> None:
    cut = _cutoff(fill_input)
    assert abs(cut - EDGE_HZ / SR * 1024) <= 6
    before = stft_mag(fill_input)[..., cut:512, :].mean()
    for y in fill_outputs:
        assert y.shape == fill_input.shape
        assert stft_mag(y)[..., cut:512, :].mean() > 10 * before


def test_same_seed_same_output(fill: Restorer, fill_input: np.ndarray, fill_outputs: list[np.ndarray]) -> None:
    again = fill.restore(fill_input, SR, seed=0, variants=3)
    for a, b in zip(again, fill_outputs, strict=True):
        np.testing.assert_array_equal(a, b)
    # variant v does not depend on how many variants were asked for
    (first,) = fill.restore(fill_input, SR, seed=0, variants=1)
    np.testing.assert_array_equal(first, fill_outputs[0])


def test_different_seeds_and_variants_differ(fill: Restorer, fill_input: np.ndarray,
                                             fill_outputs: list[np.ndarray]) -> None:
    (other,) = fill.restore(fill_input, SR, seed=1, variants=1)
    assert np.max(np.abs(other - fill_outputs[0])) > 1e-4
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.max(np.abs(fill_outputs[i] - fill_outputs[j])) > 1e-4
    # stereo channels get their own z
    y = fill_outputs[0] - fill_input
    assert np.max(np.abs(y[0] - y[1])) > 1e-4


def test_intact_band_is_unchanged(fill: Restorer, fill_input: np.ndarray, fill_outputs: list[np.ndarray]) -> None:
    x = fill_input
    cut = _cutoff(x)
    # below the mask ramp, less the Hann main lobe's reach, the magnitudes are kept
    keep = cut - fill.config.mask_ramp_bins - 4
    mx = stft_mag(x)[..., :keep, :]
    for y in fill_outputs:
        my = stft_mag(y)[..., :keep, :]
        assert np.linalg.norm(my - mx) / np.linalg.norm(mx) < 1e-3
        # as a waveform: everything below 4 kHz is the input, sample for sample
        assert np.max(np.abs(brickwall(y, 4000, SR) - brickwall(x, 4000, SR))) < 1e-4


def test_extension_gain_scales_the_restored_band_only(fill_input: np.ndarray,
                                                      fill_outputs: list[np.ndarray]) -> None:
    quieter = Restorer(FILL_MODEL, device="cpu", threads=1)
    quieter.config.extension_gain_db = [[1000.0, -6.0]]  # one point: -6 dB at every cutoff
    (y,) = quieter.restore(fill_input, SR, seed=0, variants=1)
    cut = _cutoff(fill_input)
    m0, m1 = stft_mag(fill_outputs[0]), stft_mag(y)
    # restored band: 6 dB down (half the magnitude, a quarter of the energy)
    ratio = (m1[..., cut + 4 :, :] ** 2).sum() / (m0[..., cut + 4 :, :] ** 2).sum()
    assert ratio == pytest.approx(10 ** (-6 / 10), rel=0.05)
    # the MP3's own band: as without the gain
    keep = cut - quieter.config.mask_ramp_bins - 4
    assert np.linalg.norm(m1[..., :keep, :] - m0[..., :keep, :]) < 1e-4 * np.linalg.norm(m0[..., :keep, :])


def test_extension_shelf_lowers_the_restored_band_above_its_frequency_only(
        fill_input: np.ndarray, fill_outputs: list[np.ndarray]) -> None:
    shelved = Restorer(FILL_MODEL, device="cpu", threads=1)
    shelved.config.extension_shelf_db = [[9750.0, 0.0], [10250.0, -12.0]]
    shelved.config.extension_shelf_from_hz = 6000.0  # above this input's cutoff: no shelf
    (y,) = shelved.restore(fill_input, SR, seed=0, variants=1)
    free = fill_outputs[0]
    np.testing.assert_array_equal(y, free)
    shelved.config.extension_shelf_from_hz = 4000.0  # under it: the shelf
    (y,) = shelved.restore(fill_input, SR, seed=0, variants=1)
    above = 20 * np.log10(_band_level(y, 11000, 16000) / _band_level(free, 11000, 16000))
    assert -12.5 < above < -11.5
    # the restored band under the shelf, and the MP3's own band, as without it
    assert _band_level(y, 6500, 9000) == pytest.approx(_band_level(free, 6500, 9000), rel=0.02)
    assert _band_level(y, 0, 4500) == pytest.approx(_band_level(free, 0, 4500), rel=1e-3)


def test_dropouts_under_the_cutoff_are_filled_and_the_rest_kept() -> None:
    from mp3fix.spectral import istft, stft

    x = faded_lowpass(3 * 32768 + 77, channels=2, seed=5)
    cut = _cutoff(x)
    spec = stft(x, 1024, 512)
    spec[..., cut - 40 : cut - 10, 60:120] = 0.0  # the encoder dropped a band for 60 frames
    xh = istft(spec, 1024, 512, x.shape[-1])
    assert _cutoff(xh) == cut
    runs = []
    for on, batch in ((True, None), (False, None), (True, 1)):
        r = Restorer(FILL_MODEL, device="cpu", threads=1, hole_fill=on, chunk_batch=batch)
        r.config.hole_fill_bins, r.config.hole_fill_hz, r.config.hole_fill_db = 48, [0.0, 22050.0], 30.0
        # fill.onnx restores at a fixed level far under this band's; +60 dB brings it near
        r.config.extension_gain_db = [[1000.0, 60.0]]
        runs.append(r.restore(xh, SR, seed=0, variants=2 if batch else 1))
    # the filling pass is per chunk, with the first variant's noise: one chunk per call, or two
    # variants, change nothing
    np.testing.assert_allclose(runs[2][0], runs[0][0], rtol=0, atol=1e-6)
    assert not np.allclose(runs[2][1], runs[2][0])
    filled, plain = (stft_mag(run[0]) for run in runs[:2])
    intact = stft_mag(x)[..., cut - 36 : cut - 14, 70:110].mean()
    # the dropout: left empty without the filling, back near the band's own level with it
    assert plain[..., cut - 36 : cut - 14, 70:110].mean() < 0.01 * intact
    assert 0.3 * intact < filled[..., cut - 36 : cut - 14, 70:110].mean() < 3 * intact
    # the band where the MP3 has content keeps it, but for the odd bin of noise that falls 30 dB
    # under its neighbours (frames 20-50: after the fade-in, which this content-blind model fills too)
    a, b = filled[..., cut - 44 : cut - 4, 20:50], plain[..., cut - 44 : cut - 4, 20:50]
    # (and the bins beside it, through the overlapping frames)
    assert np.mean(np.abs(a - b) > 0.1 * b) < 0.1 and np.linalg.norm(a - b) < 0.1 * np.linalg.norm(b)
    # the band below (but for the file's edge frames): as without it
    a, b = filled[..., : cut - 56, 4:-4], plain[..., : cut - 56, 4:-4]
    assert np.linalg.norm(a - b) < 1e-3 * np.linalg.norm(b)
    # the restored band is made from the filled band: it changes most in the dropout's frames
    # (elsewhere only where the odd filled bin is copied upwards)
    def change(frames: slice) -> float:
        a, b = filled[..., cut + 4 :, frames], plain[..., cut + 4 :, frames]
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    assert change(slice(70, 110)) > 2 * max(change(slice(25, 55)), change(slice(125, -4)))
    # where the dropout is copied upwards (bins 24-54 above the cutoff come from 40-10 under it) the
    # restored band sinks without the filling and keeps the level beside it with it
    tile = (..., slice(cut + 28, cut + 50), slice(70, 110))
    beside = filled[..., cut + 28 : cut + 50, 20:50].mean()
    assert plain[tile].mean() < 0.7 * beside
    assert 0.8 * beside < filled[tile].mean() < 1.25 * beside


def test_variants_differ_only_above_cutoff(fill_input: np.ndarray, fill_outputs: list[np.ndarray]) -> None:
    cut = _cutoff(fill_input)
    d = stft_mag(fill_outputs[0] - fill_outputs[1])
    low = (d[..., : cut - 12, :] ** 2).sum()
    high = (d[..., cut:, :] ** 2).sum()
    assert high > 0
    assert low < 1e-3 * high


def test_output_is_not_shifted(fill_input: np.ndarray, fill_outputs: list[np.ndarray]) -> None:
    for y in fill_outputs:
        assert xcorr_lag(fill_input[0], y[0], 2000) == 0
        assert xcorr_lag(fill_input[1], y[1], 2000) == 0


def test_chunk_borders_are_seamless(fill: Restorer, fill_input: np.ndarray,
                                    fill_outputs: list[np.ndarray]) -> None:
    # the output does not depend on how the input arrives (block sizes)
    x = fill_input
    blocks = [x[:, i : i + 7000] for i in range(0, x.shape[1], 7000)]
    out = np.concatenate(list(fill.restore_stream(blocks, seed=0, variants=3)), axis=1)
    for v in range(3):
        np.testing.assert_allclose(out[2 * v : 2 * v + 2], fill_outputs[v], rtol=0, atol=1e-6)


def test_gentle_cutoff_in_a_chunk_cut_from_a_song_is_restored(fill: Restorer) -> None:
    """A chunk is cut out of the song at non-zero samples; the click of those
    edges must not hide the band edge, or the chunk would pass unrestored."""
    from tests.test_spectral import bass_heavy_with_gentle_cutoff

    width = fill.config.segment + 2 * fill.config.context
    chunk = bass_heavy_with_gentle_cutoff(width, seed=3)
    out = fill.process_chunk(chunk, 10 * width, seed=0, variants=1)
    hi = slice(int(4500 / SR * 1024), 512)
    inner = interior_frames(width, 1024, 512)  # measured away from the edge clicks
    assert stft_mag(out)[:, hi][..., inner].mean() > 100 * stft_mag(chunk)[:, hi][..., inner].mean()


def test_a_source_panned_hard_left_stays_in_the_left_channel(fill: Restorer) -> None:
    """Stereo is restored as mid and side with the same noise: for a source in one
    channel they are the same signal, so the other channel (left minus right) gets
    nothing. With noise of their own (fill.onnx adds z-dependent energy) it would."""
    left = faded_lowpass(50000, channels=1, seed=6)[0]
    x = np.stack([left, np.zeros_like(left)])
    hi = slice(int(EDGE_HZ * 1.3 / SR * 1024), 512)
    for y in fill.restore(x, SR, seed=0, variants=2):
        assert stft_mag(y[:1])[:, hi].mean() > 100 * stft_mag(x[:1])[:, hi].mean()  # restored
        np.testing.assert_allclose(y[1], 0, rtol=0, atol=1e-6)


def test_a_mono_recording_in_a_stereo_file_stays_mono_with_the_shipped_model() -> None:
    """Its side is silent, which the shipped model leaves silent; left and right
    each restored with noise of its own came out different in the restored band."""
    x = np.repeat(faded_lowpass(50000, channels=1, seed=7), 2, axis=0)
    y = Restorer(None, device="cpu", threads=1).restore(x, SR, seed=0)[0]
    hi = slice(int(EDGE_HZ * 1.3 / SR * 1024), 512)
    assert stft_mag(y[:1])[:, hi].mean() > 10 * stft_mag(x[:1])[:, hi].mean()  # restored
    assert np.abs(y[0] - y[1]).max() < 1e-4 * np.abs(y[0]).max()  # measured 4e-6: 108 dB down
    lr = Restorer(None, device="cpu", threads=1, mid_side=False).restore(x, SR, seed=0)[0]
    assert np.abs(lr[0] - lr[1]).max() > 1e-2 * np.abs(lr[0]).max()  # measured 0.15


def test_silence_stays_silent(fill: Restorer) -> None:
    out = fill.restore(np.zeros((2, 50000), np.float32), SR, variants=2)
    for y in out:
        np.testing.assert_array_equal(y, 0)


def _border_energy(phase: str) -> float:
    """Restored-band energy at chunk borders relative to the median, with fill.onnx."""
    r = Restorer(FILL_MODEL, device="cpu", threads=1, phase=phase)
    step, hop = r.config.segment - r.config.overlap, r.config.hop
    n = 6 * r.config.segment
    (y,) = r.restore(lowpass_noise(n, EDGE_HZ, SR, channels=1, seed=1), SR, seed=0)
    e = (stft_mag(y)[0, 200:512, :] ** 2).mean(axis=0)
    borders = [(k * step + r.config.overlap // 2) // hop for k in range(1, n // step)]
    near = np.concatenate([e[b - 1 : b + 2] for b in borders])
    return float(near.mean() / np.median(e))


def test_copy_phase_is_seamless_at_chunk_borders() -> None:
    assert _border_energy("copy") > 0.8


def test_random_phase_is_seamless_at_chunk_borders() -> None:
    assert _border_energy("random") > 0.8


# ---------------------------------------------------------------- chunk batching


class RecordingGenerator:
    """Wraps a Generator; records, per call, the band-mask start of every row."""

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.calls: list[np.ndarray] = []

    def __call__(self, logmag: np.ndarray, mask: np.ndarray, z: np.ndarray,
                 copied: np.ndarray | None = None) -> np.ndarray:
        self.calls.append(np.argmax(mask[:, 0, :, 0] > 0, axis=1))
        return self.gen(logmag, mask, z, copied)


@pytest.mark.parametrize("phase", ["copy", "random"])
def test_chunk_batch_gives_the_same_output(phase: str) -> None:
    # 7 chunks run as groups of 3, 3 and 1. Chunks 0-1 are cut at 3 kHz, the rest
    # at 5 kHz, so the first group mixes cutoffs; chunk 4 alone also holds white
    # noise over two thirds of its frames (full band most of the time: nothing to
    # restore), so the second group sends only chunks 3 and 5.
    cfg = Restorer(FILL_MODEL, device="cpu", threads=1).config
    seg, ov, ctx = cfg.segment, cfg.overlap, cfg.context
    step = seg - ov
    n = 6 * step + seg // 2
    t = np.arange(n)
    edge = 2 * step + ov + ctx  # the first sample chunk 2 sees that chunk 1 does not
    w = np.clip((t - edge) / 2000, 0, 1)
    w = (np.sin(np.pi / 2 * w) ** 2).astype(np.float32)  # 3 kHz -> 5 kHz, smoothly
    x = (1 - w) * faded_lowpass(n, 2, seed=11, edge_hz=3000) + w * faded_lowpass(n, 2, seed=12)
    # chunk 4 sees [4 step - ctx, 4 step + seg + ctx): noise over 66 of its 96
    # frames, and over a third of chunk 3's and a sixth of chunk 5's, which the
    # cutoff detector's median of run means passes over
    hop = cfg.hop
    assert (seg, ov, ctx) == (64 * hop, 8 * hop, 16 * hop)  # the frame counts above
    lo, hi = 4 * step - 10 * hop, 4 * step + 56 * hop
    x[:, lo:hi] += 0.3 * tukey(hi - lo, 0.1).astype(np.float32) * white_noise(hi - lo, 2, seed=13, scale=1.0)

    out = {}
    for batch in (1, 3):
        r = Restorer(FILL_MODEL, device="cpu", threads=1, phase=phase, chunk_batch=batch)
        assert r.chunk_batch == batch
        rec = RecordingGenerator(r.generator)
        r.generator = rec  # type: ignore[assignment]
        out[batch] = r.restore(x, SR, seed=3, variants=2)
        if batch == 3:
            # rows: chunks x 2 variants x 2 channels
            assert [len(c) for c in rec.calls] == [12, 8, 4]
            first = rec.calls[0]
            # cutoffs near 3 kHz (bin ~70), 3 kHz, 5 kHz (bin ~116)
            assert abs(int(first[0]) - int(first[4])) <= 2 and first[8] > first[4] + 30
        else:
            assert len(rec.calls) == 6
    for a, b in zip(out[1], out[3], strict=True):
        np.testing.assert_array_equal(a, b)


class ThreadRecordingGenerator:
    """Wraps a Generator; records the thread of every call."""

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.threads: list[str] = []

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return self.gen(*inputs)


@pytest.mark.parametrize("batch", [1, 2])
def test_pipeline_runs_the_model_on_a_worker_with_the_same_output(batch: int) -> None:
    cfg = Restorer(FILL_MODEL, device="cpu", threads=1).config
    n = 5 * (cfg.segment - cfg.overlap) + 1234
    x = faded_lowpass(n, 2, seed=21, edge_hz=4000)
    out, threads = {}, {}
    for pipeline in (False, True):
        r = Restorer(FILL_MODEL, device="cpu", threads=1, chunk_batch=batch, pipeline=pipeline)
        rec = ThreadRecordingGenerator(r.generator)
        r.generator = rec  # type: ignore[assignment]
        out[pipeline] = r.restore(x, SR, seed=4, variants=2)
        threads[pipeline] = rec.threads
    assert len(threads[True]) == len(threads[False]) >= 3  # several groups, so several in flight
    assert set(threads[False]) == {threading.current_thread().name}
    assert all(t.startswith("mp3fix-model") for t in threads[True])
    for a, b in zip(out[False], out[True], strict=True):
        np.testing.assert_array_equal(a, b)


def test_pipeline_stops_the_model_threads_busy_waiting() -> None:
    def spinning(r: Restorer) -> str:
        opts = r.generator.session.get_session_options()
        try:
            return opts.get_session_config_entry("session.intra_op.allow_spinning")
        except Exception:  # noqa: BLE001 - onnxruntime's error for an unset key
            return "default"

    assert spinning(Restorer(FILL_MODEL, device="cpu", threads=2)) == "0"  # pipeline by default
    assert spinning(Restorer(FILL_MODEL, device="cpu", threads=2, pipeline=False)) == "default"


def test_pipeline_model_failure_leaves_nothing(stereo_wav: tuple[np.ndarray, Path], tmp_path: Path) -> None:
    _, src = stereo_wav
    r = Restorer(FILL_MODEL, device="cpu", threads=1)
    calls = 0

    def failing(*inputs: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("generator failed (simulated)")
        return Generator.__call__(real, *inputs)

    real = r.generator
    r.generator = failing  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="simulated"):
        r.restore_file(src, [tmp_path / "out.wav"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_process_chunks_equals_process_chunk(fill: Restorer) -> None:
    width = fill.config.segment + 2 * fill.config.context
    rng = np.random.default_rng(5)
    chunks = [np.tile(lowpass_noise(width, hz, SR, channels=2, seed=i), (2, 1))
              for i, hz in enumerate([4000.0, 8000.0, 30000.0])]
    chunks.append(np.zeros_like(chunks[0]))
    starts = [int(s) for s in rng.integers(-1000, 10**6, len(chunks)) * 512]
    batched = fill.process_chunks(chunks, starts, seed=1, variants=2)
    for c, s, b in zip(chunks, starts, batched, strict=True):
        np.testing.assert_array_equal(fill.process_chunk(c, s, seed=1, variants=2), b)
    np.testing.assert_array_equal(batched[2], chunks[2])  # full band: passed through
    np.testing.assert_array_equal(batched[3], 0)


def test_chunk_batch_defaults_and_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Restorer(IDENTITY_MODEL, device="cpu", threads=1).chunk_batch == 1
    assert Restorer(IDENTITY_MODEL, device="cpu", threads=1).notice is None
    # auto chose CUDA, which fell back: CPU settings, and a notice for the user
    fake_cuda_that_falls_back(monkeypatch)
    r = Restorer(IDENTITY_MODEL, device="auto", threads=1)
    assert r.chunk_batch == 1 and r.generator.device == "cpu"
    assert r.notice is not None and "fell back to CPU" in r.notice
    for bad in (0, -2, True):
        with pytest.raises(ValueError, match="chunk_batch"):
            Restorer(IDENTITY_MODEL, device="cpu", chunk_batch=bad)


# ---------------------------------------------------------------- draw_z


@pytest.mark.parametrize("f0,n", [(0, 1), (0, 64), (10, 200), (63, 2), (640, 97), (1000, 333)])
def test_draw_z_does_not_depend_on_chunking(f0: int, n: int) -> None:
    zc, bins = 2, 16
    a = draw_z(7, 1, 0, f0, n, zc, bins)
    assert a.shape == (zc, bins, n) and a.dtype == np.float32
    lo = f0 - 10
    if lo >= 0:
        wide = draw_z(7, 1, 0, lo, n + 20, zc, bins)
        np.testing.assert_array_equal(a, wide[:, :, 10 : 10 + n])
    # split at an arbitrary frame: same noise
    k = n // 3
    parts = np.concatenate([draw_z(7, 1, 0, f0, k, zc, bins), draw_z(7, 1, 0, f0 + k, n - k, zc, bins)], axis=-1)
    np.testing.assert_array_equal(a, parts)


def test_draw_z_depends_on_seed_variant_channel() -> None:
    base = draw_z(0, 0, 0, 5, 100, 2, 32)
    for args in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]:
        other = draw_z(*args, 5, 100, 2, 32)
        assert not np.allclose(base, other)
    # large seeds are accepted (masked to 32 bits), and blocks are not repeats of each other
    draw_z(2**40 + 3, 0, 0, 0, 10, 2, 8)
    z = draw_z(0, 0, 0, 0, 2 * Z_BLOCK, 2, 8)
    assert not np.allclose(z[..., :Z_BLOCK], z[..., Z_BLOCK:])
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.1


def test_global_z_is_a_ladder_around_the_median_darker_first() -> None:
    values = [float(global_z(v, 1)[0]) for v in range(7)]
    assert values[0] == 0.0
    np.testing.assert_allclose(values[1:], [-0.8416, 0.8416, -1.2816, 1.2816, -1.6449, 1.6449], atol=1e-4)
    # a model whose highs get louder with smaller z: the same ladder, mirrored
    np.testing.assert_allclose([float(global_z(v, 1, -1.0)[0]) for v in range(7)], [-x for x in values])
    assert global_z(3, 2).shape == (2,) and global_z(3, 2)[0] == global_z(3, 2)[1]


class _RecordingGenerator:
    """The restorer's generator, recording the z of every call."""

    def __init__(self, inner: Generator) -> None:
        self.inner, self.z = inner, []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __call__(self, logmag, mask, z, copied=None):
        self.z.append(z.copy())
        return self.inner(logmag, mask, z, copied)


@pytest.mark.parametrize("channels", [1, 2])
def test_global_z_channels_hold_one_value_per_variant_over_the_whole_file(channels: int) -> None:
    """A model whose sidecar has ``z_global_channels`` 1 gets, in z's last channel,
    one value per variant in every chunk, band and frame and for every audio
    channel (0 for the first variant); the other channel stays per-frame noise."""
    r = Restorer(FILL_MODEL, device="cpu", threads=1)
    r.config.z_global_channels, r.config.z_global_brighter = 1, -1.0
    rec = r.generator = _RecordingGenerator(r.generator)
    x = faded_lowpass(3 * 32768 + 77, channels=channels, seed=1)
    r.restore(x, SR, seed=3, variants=3)
    assert len(rec.z) >= 3  # several chunks
    for z in rec.z:  # (variants * channels, z_channels, bins, frames)
        z = z.reshape(3, channels, *z.shape[1:])
        for v in range(3):
            np.testing.assert_array_equal(z[v, :, -1], global_z(v, 1, -1.0)[0])
        assert z[:, :, 0].std() > 0.5
    assert rec.z[0][1 * channels, -1, 0, 0] > 0  # the second variant darker: +0.84 with brighter = -1


# ---------------------------------------------------------------- restore_file


@pytest.fixture()
def stereo_wav(tmp_path: Path) -> tuple[np.ndarray, Path]:
    x = faded_lowpass(50000, channels=2, seed=9)
    return x, write_wav(tmp_path / "in.wav", x, SR)


def test_restore_file_writes_variants(fill: Restorer, stereo_wav: tuple[np.ndarray, Path], tmp_path: Path) -> None:
    x, src = stereo_wav
    outs = [tmp_path / "out" / f"v{i}.flac" for i in range(3)]
    calls: list[tuple[int, int]] = []
    res = fill.restore_file(src, outs, seed=5, on_progress=lambda d, t: calls.append((d, t)))
    assert res.outputs == outs and res.channels == 2 and res.input_rate == SR
    assert abs(res.seconds - x.shape[1] / SR) < 1e-6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["v0.flac", "v1.flac", "v2.flac"]
    expected = fill.restore(x, SR, seed=5, variants=3)
    for out, e in zip(outs, expected, strict=True):
        info = sf.info(str(out))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 2, x.shape[1], "PCM_24")
        y = sf.read(str(out), dtype="float32")[0].T
        assert np.max(np.abs(y - e)) < 2**-22
    assert calls and calls[-1][0] == x.shape[1]
    assert all(b[0] > a[0] for a, b in zip(calls, calls[1:], strict=False))


def test_restore_file_writes_each_highs_level_as_that_level_alone(fill: Restorer, stereo_wav: tuple[np.ndarray, Path],
                                                                  tmp_path: Path) -> None:
    x, src = stereo_wav
    levels = (-12.0, 0.0, 6.0)
    outs = [tmp_path / f"h{k}v{v}.wav" for k in range(3) for v in range(2)]  # level by level
    calls: list[tuple[int, int]] = []
    fill.restore_file(src, outs, seed=5, highs=levels, on_progress=lambda d, t: calls.append((d, t)))
    for k, level in enumerate(levels):
        expected = Restorer(FILL_MODEL, device="cpu", threads=1, highs_db=level).restore(x, SR, seed=5, variants=2)
        for v in range(2):
            y = sf.read(str(outs[2 * k + v]), dtype="float32")[0].T
            np.testing.assert_array_equal(y, expected[v])
            with sf.SoundFile(str(outs[2 * k + v])) as f:
                software = f.copy_metadata()["software"]
            assert ("highs" in software) == (level != 0) and (f"{level:+g} dB" in software or level == 0)
    # one progress bar over every pass
    assert calls[-1] == (3 * x.shape[1], 3 * x.shape[1])
    with pytest.raises(ValueError, match="highs levels"):
        fill.restore_file(src, [tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"], highs=(-6.0, 0.0))
    with pytest.raises(ValueError, match="finite"):
        fill.restore_file(src, [tmp_path / "a.wav"], highs=(float("nan"),))
    assert not (tmp_path / "a.wav").exists()


def test_restore_file_mono_stays_mono(fill: Restorer, tmp_path: Path) -> None:
    x = faded_lowpass(30000, channels=1, seed=2)
    src = write_wav(tmp_path / "mono.wav", x, SR)
    res = fill.restore_file(src, [tmp_path / "m.wav"])
    assert res.channels == 1
    y, rate = sf.read(str(tmp_path / "m.wav"), dtype="float32")
    assert rate == SR and y.ndim == 1 and y.size == x.shape[1]


def test_restore_file_identity_wav_round_trip(identity: Restorer, stereo_wav: tuple[np.ndarray, Path],
                                              tmp_path: Path) -> None:
    x, src = stereo_wav
    identity.restore_file(src, [tmp_path / "same.wav"])
    y = sf.read(str(tmp_path / "same.wav"), dtype="float32")[0].T
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-4


def test_restore_file_mp3_at_low_rate(fill: Restorer, tmp_path: Path) -> None:
    # 32 kbit/s stereo at 16 kHz: restored at 44.1 kHz, same duration, not shifted
    x = faded_lowpass(44100, channels=2, seed=4, edge_hz=15000)
    mp3 = encode(write_wav(tmp_path / "src.wav", x, SR), tmp_path / "low.mp3", 2, 16000, 32)
    decoded, _ = audio.decode(mp3, SR)
    res = fill.restore_file(mp3, [tmp_path / "r.wav"], seed=1)
    assert res.input_rate == 16000 and res.channels == 2
    y = sf.read(str(tmp_path / "r.wav"), dtype="float32")[0].T
    assert y.shape == decoded.shape
    assert abs(y.shape[1] - x.shape[1]) <= 2
    assert xcorr_lag(decoded[0], y[0], 2000) == 0
    cut = _cutoff(decoded)
    assert cut < 200  # the MP3 lost everything above ~8 kHz
    assert stft_mag(y)[..., cut:512, :].mean() > 10 * stft_mag(decoded)[..., cut:512, :].mean()


def test_restore_file_refuses_to_overwrite_input(fill: Restorer, stereo_wav: tuple[np.ndarray, Path],
                                                 tmp_path: Path) -> None:
    x, src = stereo_wav
    before = src.read_bytes()
    for target in (src, tmp_path / "." / "in.wav"):
        with pytest.raises(OutputError, match="input"):
            fill.restore_file(src, [target], overwrite=True)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_restore_file_refuses_existing_outputs(fill: Restorer, stereo_wav: tuple[np.ndarray, Path],
                                               tmp_path: Path) -> None:
    _, src = stereo_wav
    existing = tmp_path / "v1.wav"
    existing.write_bytes(b"keep me")
    outs = [tmp_path / "v0.wav", existing]
    with pytest.raises(OutputError, match="exists"):
        fill.restore_file(src, outs)
    assert existing.read_bytes() == b"keep me"
    assert not outs[0].exists()
    fill.restore_file(src, outs, overwrite=True)
    assert sf.info(str(existing)).frames == 50000 and outs[0].exists()


def test_restore_file_checks_format_before_work(fill: Restorer, tmp_path: Path) -> None:
    # the input does not even exist: the bad output format is reported first
    with pytest.raises(OutputError):
        fill.restore_file(tmp_path / "missing.mp3", [tmp_path / "out.mp3"])
    with pytest.raises(OutputError):
        fill.restore_file(tmp_path / "missing.mp3", [tmp_path / "out.flac"], bit_depth="float")


def test_restore_file_bad_input_leaves_nothing(fill: Restorer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 30_000, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError, match="bad.mp3"):
        fill.restore_file(bad, [tmp_path / "a.wav", tmp_path / "b.flac"])
    assert [p.name for p in tmp_path.iterdir()] == ["bad.mp3"]


def test_failure_mid_stream_leaves_nothing(fill: Restorer, stereo_wav: tuple[np.ndarray, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _, src = stereo_wav
    real = audio.decode_blocks

    def failing(info: audio.SourceInfo, rate: int, block: int = 1 << 16, problems=None):  # type: ignore[no-untyped-def]
        gen = real(info, rate, block=8192, problems=problems)
        yield next(gen)
        yield next(gen)
        raise DecodeError(f"{info.path}: decoding failed (simulated)")

    monkeypatch.setattr(restore.audio, "decode_blocks", failing)
    outs = [tmp_path / "out" / "a.wav", tmp_path / "out" / "b.flac"]
    with pytest.raises(DecodeError, match="simulated"):
        fill.restore_file(src, outs)
    assert list((tmp_path / "out").iterdir()) == []


def test_interrupt_leaves_nothing(fill: Restorer, stereo_wav: tuple[np.ndarray, Path], tmp_path: Path) -> None:
    _, src = stereo_wav

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fill.restore_file(src, [tmp_path / "x.wav"], on_progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_unknown_phase_strategy() -> None:
    with pytest.raises(ValueError, match="phase"):
        Restorer(IDENTITY_MODEL, device="cpu", phase="zero")


def test_normal_table_is_a_standard_normal() -> None:
    from mp3fix.restore import normal_table

    t = normal_table()
    assert t.shape == (65536,) and t.dtype == np.float32
    assert np.all(np.diff(t) > 0)  # quantiles: strictly increasing
    np.testing.assert_allclose(t, -t[::-1], atol=1e-6)  # symmetric about 0
    assert abs(float(t.astype(np.float64).var()) - 1.0) < 1e-3
    # the fraction within one sigma is the normal's 68.27%
    assert abs(float(np.mean(np.abs(t) < 1.0)) - 0.6827) < 1e-3


def _band_level(x: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    m = stft_mag(x)[..., int(lo_hz / SR * 1024) : int(hi_hz / SR * 1024), 8:-8]
    return float(m.mean())


def test_source_band_adds_nothing_above_the_recordings_own_edge(fill: Restorer, fill_input: np.ndarray,
                                                                 fill_outputs: list[np.ndarray]) -> None:
    # the caller says the recording ends at 9 kHz: restored from the 5 kHz cutoff up to there, nothing above
    (capped,) = fill.restore(fill_input, SR, seed=0, variants=1, source_band_hz=9000.0)
    free = fill_outputs[0]  # the same seed with no source band
    above_input = _band_level(fill_input, 10000, 20000)  # leakage only
    above_free, above_capped = _band_level(free, 10000, 20000), _band_level(capped, 10000, 20000)
    assert above_free > 100 * above_input and above_capped < 2 * above_input
    below_input = _band_level(fill_input, 5800, 8300)
    below_free, below_capped = _band_level(free, 5800, 8300), _band_level(capped, 5800, 8300)
    assert below_capped > 10 * below_input and abs(20 * np.log10(below_capped / below_free)) < 0.5
    assert _band_level(capped, 0, 4500) == pytest.approx(_band_level(fill_input, 0, 4500), rel=1e-3)


def test_highs_moves_the_restored_band_by_its_decibels_and_nothing_else(fill_input: np.ndarray,
                                                                         fill_outputs: list[np.ndarray]) -> None:
    free = fill_outputs[0]
    quieter = Restorer(FILL_MODEL, device="cpu", threads=1, highs_db=-12.0)
    (y,) = quieter.restore(fill_input, SR, seed=0, variants=1)
    db = 20 * np.log10(_band_level(y, 6500, 16000) / _band_level(free, 6500, 16000))
    assert -12.5 < db < -11.5
    assert _band_level(y, 0, 4500) == pytest.approx(_band_level(free, 0, 4500), rel=1e-3)
    (z,) = Restorer(FILL_MODEL, device="cpu", threads=1, highs_db=0.0).restore(fill_input, SR, seed=0, variants=1)
    np.testing.assert_array_equal(z, free)
    with pytest.raises(ValueError, match="highs_db"):
        Restorer(FILL_MODEL, device="cpu", highs_db=float("nan"))


def test_source_band_at_or_below_the_cutoff_leaves_the_audio_alone(fill: Restorer, fill_input: np.ndarray) -> None:
    (y,) = fill.restore(fill_input, SR, seed=0, variants=1, source_band_hz=5000.0)
    np.testing.assert_allclose(y, fill_input, atol=1e-6)
    assert fill.own_edge_chunks == 0  # not the bitrate's guard: nothing to say about it
    with pytest.raises(ValueError, match="source_band_hz"):
        fill.restore(fill_input, SR, source_band_hz=0.0)


@pytest.mark.parametrize("phase", ["copy", "random"])
def test_variants_in_groups_are_the_variants_of_one_pass(stereo_wav: tuple[np.ndarray, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, phase: str) -> None:
    # restore_file restores VARIANT_GROUP variants a pass (memory grows with the variants restored
    # at once); each variant, dropout filling included, must be what one pass of all of them writes
    _, src = stereo_wav
    r = Restorer(FILL_MODEL, device="cpu", threads=1, phase=phase)
    r.config.hole_fill_bins, r.config.hole_fill_hz, r.config.hole_fill_db = 48, [0.0, 22050.0], 30.0
    r.config.extension_gain_db = [[1000.0, 60.0]]  # so that the filling fills something
    written = {}
    for group in (2, 5):
        monkeypatch.setattr(restore, "VARIANT_GROUP", group)
        outs = [tmp_path / f"g{group}" / f"v{i}.wav" for i in range(5)]
        r.restore_file(src, outs, seed=4)
        written[group] = [sf.read(o, dtype="float32")[0] for o in outs]
    for a, b in zip(written[2], written[5], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(written[2][3], written[2][0])  # the groups' variants differ, as variants do
    # the same rows from the stream, started at a later variant
    x = sf.read(src, dtype="float32")[0].T
    late = np.concatenate(list(r.restore_stream([x], seed=4, variants=2, first_variant=3)), axis=1)
    np.testing.assert_array_equal(late[2:4].T, written[5][4])


def test_generator_calls_of_at_most_max_rows_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from mp3fix import runtime

    r = Restorer(FILL_MODEL, device="cpu", threads=1)
    x = faded_lowpass(40000, channels=2, seed=2)
    whole = r.restore(x, SR, seed=1, variants=3)  # 6 rows in one call
    calls = []
    real = r.generator.session.run

    def counted(names, feeds):  # type: ignore[no-untyped-def]
        calls.append(len(feeds["logmag"]))
        return real(names, feeds)

    monkeypatch.setattr(runtime, "MAX_ROWS", 4)
    monkeypatch.setattr(r.generator.session, "run", counted)
    sliced = r.restore(x, SR, seed=1, variants=3)
    assert calls and max(calls) <= 4 and 6 in {calls[i] + calls[i + 1] for i in range(len(calls) - 1)}
    for a, b in zip(whole, sliced, strict=True):
        np.testing.assert_array_equal(a, b)


def test_restore_in_memory_refuses_or_mends_what_a_caller_gets_wrong(identity: Restorer) -> None:
    x = faded_lowpass(20000, channels=2, seed=3)
    with pytest.raises(ValueError, match="look like \\(n, channels\\)"):
        identity.restore(x.T.copy(), SR)  # soundfile.read's layout
    for rate in (0, -44100, 44100.5, float("nan")):
        with pytest.raises(ValueError, match="sample_rate"):
            identity.restore(x, rate)
    with pytest.raises(ValueError, match="shape"):
        identity.restore(x[None], SR)
    plain = identity.restore(x, SR)[0]
    np.testing.assert_array_equal(identity.restore(x, float(SR))[0], plain)
    # integer PCM is scaled to full scale 1.0, as a file of it would be
    pcm = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(identity.restore(pcm, SR)[0], plain, atol=2e-4)
    # samples that are not numbers become silence, as in a file, not NaN everywhere around them
    bad = x.copy()
    bad[0, 5000], bad[1, 9000] = np.nan, np.inf
    out = identity.restore(bad, SR)[0]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, :4000], plain[:, :4000], atol=1e-6)
