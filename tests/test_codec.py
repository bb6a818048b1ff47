"""The band an MP3 encoder keeps, and the guard for recordings that end below it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mp3fix.codec import (
    GUARDED_FROM_HZ,
    OWN_EDGE_SHARE,
    OWN_REACH_SHARE,
    encoder_band_hz,
    encoder_reach_hz,
    lame_lowpass_hz,
    own_edge_hz,
)
from mp3fix.restore import Restorer
from tests.helpers import lowpass_noise, make_mp3, stft_mag

SR = 44100


@pytest.mark.parametrize(
    "kbps,channels,rate,expected",
    [
        (16, 2, 8000, 3700.0),  # what the lame command line picks at 16 kbit/s
        (32, 2, 16000, 5500.0),
        (64, 2, 24000, 11000.0),
        (128, 2, 44100, 17000.0),
        (70, 2, 44100, 11000.0),  # between table rows: the nearest one
        (72, 2, 44100, 11000.0),  # halfway (64 and 80): the lower
        (64, 1, 24000, 12000.0),  # mono: 1.5 x 11 kHz, but no more than Nyquist
        (16, 1, 22050, 5550.0),
        (320, 2, 48000, 20500.0),  # never above 20.5 kHz
        (32, 2, 8000, 4000.0),  # never above Nyquist
    ],
)
def test_lame_lowpass(kbps: int, channels: int, rate: int, expected: float) -> None:
    assert lame_lowpass_hz(kbps, channels, rate) == expected


def test_encoder_band_is_known_for_mp3_with_a_bitrate_only() -> None:
    assert encoder_band_hz("mp3", 64, 2, 24000) == 11000.0
    assert encoder_band_hz("mp3float", 64, 2, 24000) == 11000.0
    assert encoder_band_hz("aac", 64, 2, 24000) is None
    assert encoder_band_hz("vorbis", 64, 2, 24000) is None
    assert encoder_band_hz("mp3", None, 2, 24000) is None
    assert encoder_band_hz("mp3", 0, 2, 24000) is None


def _restored_above(restorer: Restorer, x: np.ndarray, band: float | None, edge_hz: float) -> float:
    """Mean magnitude the restoration adds 1 kHz and more above ``edge_hz``."""
    (y,) = restorer.restore(x, SR, seed=0, variants=1, encoder_band_hz=band)
    lo = int((edge_hz + 1000) / SR * 1024)
    return float(stft_mag(y)[..., lo:512, 8:-8].mean() - stft_mag(x)[..., lo:512, 8:-8].mean())


def test_own_edge_only_where_the_encoder_keeps_enough() -> None:
    assert own_edge_hz(None) is None
    assert own_edge_hz(11000.0) is None  # 64 kbit/s: a 10 kHz recording sits too close
    assert own_edge_hz(5500.0) is None  # 32 kbit/s: the encoder's own cliff scatters far below
    assert own_edge_hz(17000.0) == pytest.approx(OWN_EDGE_SHARE * 17000.0)
    assert own_edge_hz(GUARDED_FROM_HZ) == pytest.approx(OWN_EDGE_SHARE * GUARDED_FROM_HZ)


def test_reach_tells_only_at_the_measured_settings() -> None:
    # the lame command line's 64 kbit/s stereo (24 kHz), and 48 kbit/s mono
    assert encoder_reach_hz("mp3", 64, 2, 24000) == pytest.approx(OWN_REACH_SHARE * 11000.0)
    assert encoder_reach_hz("mp3float", 64, 2, 24000) == pytest.approx(OWN_REACH_SHARE * 11000.0)
    assert encoder_reach_hz("mp3", 48, 1, 32000) == pytest.approx(OWN_REACH_SHARE * 11250.0)
    assert encoder_reach_hz("mp3", 48, 1, 44100) == pytest.approx(OWN_REACH_SHARE * 11250.0)  # ffmpeg's choice
    assert encoder_reach_hz("mp3", 96, 2, 32000) == pytest.approx(OWN_REACH_SHARE * 15100.0)  # lame's choice
    assert encoder_reach_hz("mp3", 96, 2, 44100) == pytest.approx(OWN_REACH_SHARE * 15100.0)
    assert encoder_reach_hz("mp3", 96, 2, 48000) is None  # a full-band chunk fell short there
    assert encoder_reach_hz("mp3", 160, 2, 44100) is None  # LAME drops its band above 16 kHz
    assert encoder_reach_hz("mp3", 256, 2, 44100) == pytest.approx(OWN_REACH_SHARE * 19700.0)
    assert encoder_reach_hz("mp3", 64, 1, 24000) is None  # mono: a few full-band chunks fell short
    assert encoder_reach_hz("mp3", 64, 2, 22050) is None  # LAME keeps less than its table there
    assert encoder_reach_hz("mp3", 64, 2, 44100) is None  # and drops dark music's top bands
    assert encoder_reach_hz("mp3", 56, 2, 24000) is None
    assert encoder_reach_hz("mp3", 32, 2, 16000) is None
    assert encoder_reach_hz("mp3", 128, 2, 44100) is None  # the cliff decides there
    assert encoder_reach_hz("mp3", 63, 2, 24000) is None  # a VBR average
    assert encoder_reach_hz("aac", 64, 2, 24000) is None
    assert encoder_reach_hz("mp3", None, 2, 24000) is None


def test_a_cliff_far_below_the_encoder_band_is_left_alone(fill_model: Path) -> None:
    # a recording that ends at 7 kHz in a file whose encoder kept 17 kHz (128 kbit/s)
    x = lowpass_noise(4 * SR, 7000.0, SR, channels=2, seed=3)
    r = Restorer(fill_model, device="cpu", threads=1)
    assert 7000 < OWN_EDGE_SHARE * 17000
    assert _restored_above(r, x, None, 7000.0) > 1e-4  # unknown band: restored
    before = r.own_edge_chunks
    (y,) = r.restore(x, SR, seed=0, variants=1, encoder_band_hz=17000.0)
    np.testing.assert_allclose(y, x, atol=1e-6)  # left as it was (but for cross-fade rounding)
    assert r.own_edge_chunks > before
    # an encoder band too low to tell (48 kbit/s stereo keeps 7.5 kHz): restored
    assert _restored_above(r, x, 7500.0, 7000.0) > 1e-4


@pytest.mark.parametrize("edge_hz,left_alone", [(7000.0, True), (9000.0, True), (10800.0, False)])
def test_at_64_kbps_the_frames_reach_tells_the_recordings_edge(fill_model: Path, edge_hz: float,
                                                                left_alone: bool) -> None:
    # 64 kbit/s (LAME keeps 11 kHz): a cliff anywhere from 0.85 to 1.0 of the
    # band can be the encoder's, but its frames reach the band; a recording
    # that ends at 9 kHz reaches no higher in any frame
    x = lowpass_noise(4 * SR, edge_hz, SR, channels=2, seed=4)
    x[:, SR : SR + 2] = 0.9  # a click: its broadband frames must not count
    r = Restorer(fill_model, device="cpu", threads=1)
    before = r.own_edge_chunks
    (y,) = r.restore(x, SR, seed=0, variants=1, encoder_band_hz=11000.0,
                     encoder_reach_hz=encoder_reach_hz("mp3", 64, 2, 24000))
    if left_alone:
        np.testing.assert_allclose(y, x, atol=1e-6)
        assert r.own_edge_chunks > before
    else:  # restored, as where the band is not known
        assert r.own_edge_chunks == before
        assert np.abs(y - x).max() > 1e-2
        (unknown,) = r.restore(x, SR, seed=0, variants=1, encoder_band_hz=None)
        np.testing.assert_array_equal(y, unknown)


def test_restore_file_leaves_a_recording_that_ends_below_the_encoder_band(tmp_path: Path,
                                                                          fill_model: Path) -> None:
    # a 5 kHz recording in a 128 kbit/s MP3 (LAME keeps 17 kHz there): nothing to add
    x = lowpass_noise(3 * SR, 5000.0, SR, channels=2, seed=5)
    mp3 = make_mp3(tmp_path, "narrow", x, SR, 2, SR, 128)
    from mp3fix import audio

    info = audio.probe(mp3)
    assert info.bitrate_kbps == 128 and info.encoder_band_hz == 17000.0
    r = Restorer(fill_model, device="cpu", threads=1)
    res = r.restore_file(mp3, [tmp_path / "out.wav"])
    assert any("recording itself ends below the 17.0 kHz a 128 kbit/s MP3 keeps" in n for n in res.notes), res.notes
    out, _ = audio.decode(tmp_path / "out.wav", SR)
    dec, _ = audio.decode(mp3, SR)
    np.testing.assert_allclose(out, dec, atol=1e-4)  # the MP3 as it was
    # the same recording at 32 kbit/s (LAME keeps 5.5 kHz at 16 kHz): too close to tell, restored
    mp3 = make_mp3(tmp_path, "low", x, SR, 2, 16000, 32)
    res = r.restore_file(mp3, [tmp_path / "out32.wav"])
    assert not any("recording itself" in n for n in res.notes)


def test_guard_can_be_turned_off_for_a_file_and_on_the_command_line(tmp_path: Path, fill_model: Path) -> None:
    # the same narrow recording at 128 kbit/s, as an MP3 re-encoded from a low bitrate would look
    from mp3fix import audio
    from tests.test_cli import run

    x = lowpass_noise(3 * SR, 5000.0, SR, channels=2, seed=5)
    mp3 = make_mp3(tmp_path, "narrow", x, SR, 2, SR, 128)
    dec, _ = audio.decode(mp3, SR)
    r = Restorer(fill_model, device="cpu", threads=1)
    res = r.restore_file(mp3, [tmp_path / "all.wav"], guard=False)
    assert not any("recording itself" in n for n in res.notes)
    out, _ = audio.decode(tmp_path / "all.wav", SR)
    assert np.abs(out - dec).max() > 1e-3  # restored after all
    guarded = run("restore", mp3, "-o", tmp_path / "cli.wav", "--model", fill_model)
    assert guarded.exit_code == 0 and "--ignore-bitrate restores them" in guarded.stdout
    freed = run("restore", mp3, "-o", tmp_path / "cli2.wav", "--model", fill_model, "--ignore-bitrate")
    assert freed.exit_code == 0 and "recording itself" not in freed.stdout
    cli2, _ = audio.decode(tmp_path / "cli2.wav", SR)
    np.testing.assert_allclose(cli2, out, atol=1e-4)  # the command line does what the library does


def _reach_tells(tmp_path: Path, model: Path, kbps: int, rate: int, band_hz: float, edge_hz: float,
                 restored_by: float) -> Restorer:
    """Real LAME MP3s at ``kbps`` and ``rate``: a recording that ends at
    ``edge_hz`` comes back as the MP3 has it, with the note; full-band noise
    (the encoder's own cliff) is restored (its output moves by more than
    ``restored_by``)."""
    from mp3fix import audio

    r = Restorer(model, device="cpu", threads=1)
    narrow = make_mp3(tmp_path, f"narrow{kbps}", lowpass_noise(3 * SR, edge_hz, SR, channels=2, seed=6), SR, 2, rate,
                      kbps)
    info = audio.probe(narrow)
    assert info.encoder_band_hz == band_hz and info.encoder_reach_hz == pytest.approx(OWN_REACH_SHARE * band_hz)
    res = r.restore_file(narrow, [tmp_path / "narrow.wav"])
    note = f"recording itself ends below the {band_hz / 1000:.1f} kHz a {kbps} kbit/s MP3 keeps"
    assert any(note in n for n in res.notes), res.notes
    out, _ = audio.decode(tmp_path / "narrow.wav", SR)
    dec, _ = audio.decode(narrow, SR)
    np.testing.assert_allclose(out, dec, atol=1e-4)
    full = make_mp3(tmp_path, f"full{kbps}", lowpass_noise(3 * SR, 20000.0, SR, channels=2, seed=7), SR, 2, rate, kbps)
    res = r.restore_file(full, [tmp_path / "full.wav"])
    assert not any("recording itself" in n for n in res.notes), res.notes
    out, _ = audio.decode(tmp_path / "full.wav", SR)
    dec, _ = audio.decode(full, SR)
    assert np.abs(out - dec).max() > restored_by
    return r


def test_restore_file_at_64_kbps_tells_a_recordings_edge_from_the_encoders(tmp_path: Path,
                                                                           fill_model: Path) -> None:
    # LAME at 64 kbit/s (24 kHz, keeps 11 kHz): an 8 kHz recording is left as
    # it is, full-band noise (the encoder's own cliff) is restored
    from mp3fix import audio

    r = _reach_tells(tmp_path, fill_model, 64, 24000, 11000.0, 8000.0, restored_by=1e-2)
    # the 8 kHz recording at 64 kbit/s kept at 22.05 kHz: the reach cannot tell there, restored
    other = make_mp3(tmp_path, "narrow64at22", lowpass_noise(3 * SR, 8000.0, SR, channels=2, seed=6), SR, 2, 22050, 64)
    info = audio.probe(other)
    assert info.encoder_band_hz == 11000.0 and info.encoder_reach_hz is None
    res = r.restore_file(other, [tmp_path / "other.wav"])
    assert not any("recording itself" in n for n in res.notes), res.notes


def test_restore_file_at_96_kbps_tells_a_recordings_edge_above_the_cliffs_share(tmp_path: Path,
                                                                                fill_model: Path) -> None:
    # LAME at 96 kbit/s (32 kHz, keeps 15.1 kHz): a recording that ends at 13.3
    # kHz has its cliff above 0.85 of the band, where the cliff cannot tell,
    # but its frames reach no higher (0.92 of the band with the window's
    # leakage, as a validation original that ends at 13.9 kHz reached
    # 0.91-0.93); full-band noise reaches the band and is restored above 15.1
    # kHz (a file left alone moves by less than 1e-4)
    assert 13300.0 > OWN_EDGE_SHARE * 15100.0
    _reach_tells(tmp_path, fill_model, 96, 32000, 15100.0, 13300.0, restored_by=1e-3)
