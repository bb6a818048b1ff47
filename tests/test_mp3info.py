"""Tests for mp3fix.mp3info: gapless tag detection, frame walking, truncation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mp3fix.mp3info import STANDARD_DELAY, inspect_mp3, parse_header
from tests.helpers import enveloped_noise, ffmpeg, write_wav

SR = 44100
SECONDS = 1.5


@pytest.fixture(scope="module")
def source_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mp3info")
    return write_wav(folder / "src.wav", enveloped_noise(int(SECONDS * SR), SR, channels=2, seed=11), SR)


def _mp3(src: Path, name: str, channels: int, rate: int, kbps: int, *extra: str) -> Path:
    out = src.with_name(name)
    if not out.exists():
        ffmpeg("-i", str(src), "-ac", str(channels), "-ar", str(rate), "-c:a", "libmp3lame",
               "-b:a", f"{kbps}k", *extra, str(out))
    return out


def _frame_offsets(data: bytes, start: int) -> list[int]:
    """Offsets of consecutive frame headers from ``start`` (test's own walker)."""
    offsets = []
    pos = start
    while pos + 4 <= len(data):
        h = parse_header(data[pos : pos + 4])
        if h is None:
            break
        offsets.append(pos)
        pos += h.length
    return offsets


def _first_frame(data: bytes) -> int:
    """Offset of the first frame: right after ffmpeg's ID3v2 tag, if any."""
    if data[:3] == b"ID3":
        return 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
    return 0


def test_parse_header_known_values() -> None:
    # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding, joint stereo, no CRC
    h = parse_header(bytes([0xFF, 0xFB, 0x90, 0x44]))
    assert h is not None
    assert (h.version, h.bitrate_kbps, h.sample_rate, h.padding, h.mono, h.crc) == (1, 128, 44100, 0, False, False)
    assert h.length == 417
    # MPEG-2 layer III, 32 kbit/s, 16 kHz, padded, mono
    h2 = parse_header(bytes([0xFF, 0xF3, 0x4A, 0xC4]))
    assert h2 is not None
    assert (h2.version, h2.bitrate_kbps, h2.sample_rate, h2.padding, h2.mono) == (2, 32, 16000, 1, True)
    assert h2.length == 72 * 32000 // 16000 + 1
    # not layer III, free format, reserved rate, no sync
    for bad in ([0xFF, 0xFD, 0x90, 0x44], [0xFF, 0xFB, 0x00, 0x44], [0xFF, 0xFB, 0x9C, 0x44], [0x7F, 0xFB, 0x90, 0x44]):
        assert parse_header(bytes(bad)) is None


def test_44k_128k_has_gapless_tag(source_wav: Path) -> None:
    facts = inspect_mp3(_mp3(source_wav, "a.mp3", 2, 44100, 128))
    assert facts is not None
    assert facts.has_gapless_tag and facts.start_trim == 0
    assert facts.sample_rate == 44100 and not facts.truncated
    # audio frames (the Info frame is not counted) cover the signal plus encoder delay
    n = int(SECONDS * SR)
    assert n <= facts.frames * 1152 <= n + 576 + 2 * 1152


@pytest.mark.parametrize("channels,rate,kbps", [(2, 16000, 32), (2, 8000, 16), (1, 16000, 16)])
def test_low_rates_written_by_ffmpeg_keep_the_tag(source_wav: Path, channels: int, rate: int, kbps: int) -> None:
    # ffmpeg's muxer writes the Info frame at a higher bitrate than the audio so the
    # LAME tag fits even at 8/16 kHz: such files are gapless and need no trim.
    path = _mp3(source_wav, f"t{channels}_{rate}_{kbps}.mp3", channels, rate, kbps)
    facts = inspect_mp3(path)
    assert facts is not None
    assert facts.has_gapless_tag and facts.start_trim == 0
    assert facts.sample_rate == rate and not facts.truncated
    data = path.read_bytes()
    offsets = _frame_offsets(data, _first_frame(data))
    info_frame, audio_frame = (parse_header(data[o : o + 4]) for o in offsets[:2])
    assert info_frame is not None and audio_frame is not None
    assert audio_frame.bitrate_kbps == kbps
    per_frame = 1152 if rate >= 32000 else 576
    assert facts.frames == len(offsets) - 1
    assert facts.frames * per_frame >= SECONDS * rate


@pytest.mark.parametrize("channels,rate,kbps", [(2, 16000, 32), (2, 8000, 16), (2, 44100, 128)])
def test_no_info_frame_means_standard_delay(source_wav: Path, channels: int, rate: int, kbps: int) -> None:
    # what other encoders (or a stripped file) give: no tag -> every decoder is late
    path = _mp3(source_wav, f"n{channels}_{rate}_{kbps}.mp3", channels, rate, kbps, "-write_xing", "0")
    facts = inspect_mp3(path)
    assert facts is not None
    assert not facts.has_gapless_tag
    assert facts.start_trim == STANDARD_DELAY == 1105
    assert facts.sample_rate == rate and not facts.truncated
    data = path.read_bytes()
    assert facts.frames == len(_frame_offsets(data, _first_frame(data)))


def test_truncated_mid_frame(source_wav: Path, tmp_path: Path) -> None:
    data = _mp3(source_wav, "a.mp3", 2, 44100, 128).read_bytes()
    offsets = _frame_offsets(data, _first_frame(data))
    last = offsets[-1]
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: last + 100])  # the last frame's header survives, its body does not
    facts = inspect_mp3(cut)
    assert facts is not None and facts.truncated
    # cut inside the last frame's header
    cut.write_bytes(data[: last + 2])
    facts = inspect_mp3(cut)
    assert facts is not None and facts.truncated
    cut.write_bytes(data[: last + 1])
    facts = inspect_mp3(cut)
    assert facts is not None and facts.truncated
    # cut exactly on a frame boundary: nothing is missing
    whole = tmp_path / "whole.mp3"
    whole.write_bytes(data[:last])
    facts = inspect_mp3(whole)
    assert facts is not None and not facts.truncated
    assert facts.frames == len(offsets) - 2  # minus the Info frame and the removed one


def test_id3v1_tag_is_not_truncation(source_wav: Path, tmp_path: Path) -> None:
    data = _mp3(source_wav, "a.mp3", 2, 44100, 128).read_bytes()
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(data + b"TAG" + bytes(125))
    facts = inspect_mp3(tagged)
    assert facts is not None and not facts.truncated
    # a truncated file that still got its ID3v1 tag appended is truncated
    offsets = _frame_offsets(data, _first_frame(data))
    tagged.write_bytes(data[: offsets[-1] + 100] + b"TAG" + bytes(125))
    facts = inspect_mp3(tagged)
    assert facts is not None and facts.truncated


def test_not_mp3_is_none(tmp_path: Path) -> None:
    rnd = tmp_path / "random.mp3"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    assert inspect_mp3(rnd) is None
    text = tmp_path / "notes.mp3"
    text.write_text("this is not an mp3\n" * 200)
    assert inspect_mp3(text) is None
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    assert inspect_mp3(empty) is None
    wav = write_wav(tmp_path / "a.wav", enveloped_noise(SR // 2, SR, seed=1), SR)
    assert inspect_mp3(wav) is None


@pytest.mark.parametrize("tail", [b"\n", b"\r\n", b"\x00\x00", b"abc", b"\x00" * 8])
def test_stray_bytes_after_the_last_frame_are_not_truncation(source_wav: Path, tmp_path: Path, tail: bytes) -> None:
    # a newline or padding appended to an intact file (1-3 bytes can hold no frame
    # header) is not a cut-off frame; only bytes that start like a header are
    src = _mp3(source_wav, "a.mp3", 2, 44100, 128)
    padded = tmp_path / "padded.mp3"
    padded.write_bytes(src.read_bytes() + tail)
    facts = inspect_mp3(padded)
    assert facts is not None and not facts.truncated
    whole = inspect_mp3(src)
    assert whole is not None and facts.frames == whole.frames
