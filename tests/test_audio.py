"""Tests for mp3fix.audio: probe, streaming decode (resample, delay trim, downmix),
decode errors, and the temp-file-then-rename AudioWriter."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from mp3fix import audio
from mp3fix.audio import (
    AudioWriter,
    decode,
    decode_blocks,
    output_format,
    output_subtype,
    parse_ffmetadata,
    probe,
    read_tags,
)
from mp3fix.errors import DecodeError, OutputError
from tests.helpers import encode, enveloped_noise, ffmpeg, lowpass_noise, write_wav, xcorr_lag

SR = 44100


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def stereo_src(folder: Path) -> tuple[np.ndarray, Path]:
    """1.5 s of enveloped broadband stereo noise at 44.1 kHz, and its float WAV."""
    x = enveloped_noise(int(1.5 * SR), SR, channels=2, seed=21)
    return x, write_wav(folder / "src.wav", x, SR)


# ---------------------------------------------------------------- probe


@pytest.mark.parametrize(
    "name,channels,rate,codec_args,codec",
    [
        ("p.mp3", 2, 44100, ["-c:a", "libmp3lame", "-b:a", "128k"], "mp3"),
        ("p.flac", 2, 48000, ["-c:a", "flac"], "flac"),
        ("p.wav", 1, 22050, ["-c:a", "pcm_s16le"], "pcm_s16le"),
        ("p.ogg", 2, 44100, ["-c:a", "libvorbis", "-q:a", "2"], "vorbis"),
        ("p.opus", 1, 48000, ["-c:a", "libopus", "-b:a", "32k"], "opus"),
    ],
)
def test_probe_reports_format(folder: Path, stereo_src: tuple[np.ndarray, Path], name: str, channels: int,
                              rate: int, codec_args: list[str], codec: str) -> None:
    path = folder / name
    ffmpeg("-i", str(stereo_src[1]), "-ac", str(channels), "-ar", str(rate), *codec_args, str(path))
    info = probe(path)
    assert info.path == path
    assert info.codec == codec
    assert info.sample_rate == rate
    assert info.channels == channels
    assert info.out_channels == channels and not info.downmixed
    assert info.duration is not None and abs(info.duration - 1.5) < 0.05
    assert info.start_trim == 0  # non-MP3, or MP3 with its gapless tag


# ---------------------------------------------------------------- decode: rate, alignment


@pytest.mark.parametrize("rate,n", [(22050, 22050), (32000, 24001), (48000, 30000)])
def test_decode_resamples_without_shift(folder: Path, rate: int, n: int) -> None:
    # band-limited well below both Nyquists, so soxr and resample_poly must agree closely
    x = lowpass_noise(n, 0.35 * rate, rate, channels=2, seed=rate) * np.linspace(0.2, 1.0, n, dtype=np.float32)
    path = write_wav(folder / f"r{rate}.wav", x, rate)
    y, info = decode(path, SR)
    assert info.sample_rate == rate and y.shape[0] == 2 and y.dtype == np.float32
    assert abs(y.shape[1] - round(n * SR / rate)) <= 2
    g = np.gcd(rate, SR)
    ref = resample_poly(x, SR // g, rate // g, axis=-1)
    assert xcorr_lag(ref[0], y[0], 200) == 0
    m = min(ref.shape[1], y.shape[1])
    inner = slice(200, m - 200)  # the resamplers' edge handling differs
    err = np.sqrt(np.mean((ref[:, inner] - y[:, inner]) ** 2)) / np.sqrt(np.mean(ref[:, inner] ** 2))
    assert err < 0.01


def test_decode_same_rate_is_exact(folder: Path) -> None:
    x = enveloped_noise(20000, SR, channels=2, seed=5)
    y, _ = decode(write_wav(folder / "same.wav", x, SR), SR)
    np.testing.assert_array_equal(y, x)


def test_decode_blocks_streams_in_blocks(stereo_src: tuple[np.ndarray, Path]) -> None:
    x, path = stereo_src
    blocks = list(decode_blocks(probe(path), SR, block=10_000))
    assert len(blocks) == -(-x.shape[1] // 10_000)
    assert all(b.shape == (2, 10_000) for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), x)


MP3_CASES = [(1, 16000, 16), (2, 16000, 32), (2, 8000, 16), (2, 24000, 64)]


@pytest.mark.parametrize("channels,rate,kbps", MP3_CASES, ids=[f"{c}ch-{r}Hz-{k}k" for c, r, k in MP3_CASES])
@pytest.mark.parametrize("xing", ["tag", "notag"])
def test_mp3_decode_is_aligned(folder: Path, stereo_src: tuple[np.ndarray, Path], channels: int, rate: int,
                               kbps: int, xing: str) -> None:
    x, src = stereo_src
    path = folder / f"a{channels}_{rate}_{kbps}_{xing}.mp3"
    ffmpeg("-i", str(src), "-ac", str(channels), "-ar", str(rate), "-c:a", "libmp3lame", "-b:a", f"{kbps}k",
           "-write_xing", "1" if xing == "tag" else "0", str(path))
    y, info = decode(path, SR)
    assert y.shape[0] == channels
    ref = x.mean(axis=0) if channels == 1 else x[0]
    assert xcorr_lag(ref, y[0], 8000) == 0
    if xing == "tag":
        assert info.start_trim == 0
        assert abs(y.shape[1] - x.shape[1]) <= 2  # the tag's padding info trims the end too
    else:
        assert info.start_trim == 1105
        # the trim is what aligns it: without it the audio is a whole codec delay late
        raw = np.concatenate(list(decode_blocks(dataclasses.replace(info, start_trim=0), SR)), axis=1)
        assert abs(xcorr_lag(ref, raw[0], 8000) - round(1105 * SR / rate)) <= 2


@pytest.mark.parametrize("channels", [3, 4, 5, 6, 7, 8])
def test_surround_is_downmixed(folder: Path, channels: int) -> None:
    x = enveloped_noise(SR // 2, SR, channels=channels, seed=3)
    path = write_wav(folder / f"ch{channels}.wav", x, SR)
    y, info = decode(path, SR)
    assert y.shape == (2, x.shape[1])
    assert np.all(np.std(y, axis=1) > 0.01)
    assert info.out_channels == 2
    assert info.channels == channels and info.downmixed


def test_mono_stays_mono(folder: Path) -> None:
    x = enveloped_noise(SR // 2, SR, seed=4)
    y, info = decode(write_wav(folder / "mono.wav", x, SR), SR)
    assert info.out_channels == 1 and not info.downmixed
    assert y.shape == (1, x.size)


# ---------------------------------------------------------------- decode errors


def _bad_files(folder: Path, good_mp3: Path) -> dict[str, Path]:
    out = folder / "bad"
    out.mkdir(exist_ok=True)
    empty = out / "empty.mp3"
    empty.write_bytes(b"")
    rnd = out / "random.mp3"
    rnd.write_bytes(np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    text = out / "readme.wav"
    text.write_text("not audio at all\n" * 100)
    data = good_mp3.read_bytes()
    truncated = out / "truncated.mp3"
    truncated.write_bytes(data[: len(data) - 100])
    return {"empty": empty, "random": rnd, "text": text, "truncated": truncated,
            "missing": out / "missing.mp3", "folder": out}


@pytest.mark.parametrize("kind", ["empty", "random", "text", "truncated", "missing", "folder"])
def test_unreadable_input_is_decode_error(folder: Path, stereo_src: tuple[np.ndarray, Path], kind: str) -> None:
    mp3 = folder / "good.mp3"
    if not mp3.exists():
        encode(stereo_src[1], mp3, 2, SR, 128)
    path = _bad_files(folder, mp3)[kind]
    with pytest.raises(DecodeError) as exc:
        decode(path, SR)
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_good_mp3_decodes(folder: Path, stereo_src: tuple[np.ndarray, Path]) -> None:
    # the control for the truncated case above: the same file, whole, is fine
    mp3 = folder / "good.mp3"
    if not mp3.exists():
        encode(stereo_src[1], mp3, 2, SR, 128)
    y, info = decode(mp3, SR)
    assert info.codec == "mp3" and y.shape == stereo_src[0].shape


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize(
    "name,depth,subtype",
    [("o.wav", None, "FLOAT"), ("o.wav", "float", "FLOAT"), ("o.wav", "16", "PCM_16"), ("o.wav", "24", "PCM_24"),
     ("o.flac", None, "PCM_24"), ("o.flac", "16", "PCM_16"), ("o.flac", "24", "PCM_24"), ("O.FLAC", "16", "PCM_16")],
)
def test_writer_formats(tmp_path: Path, name: str, depth: str | None, subtype: str) -> None:
    x = 0.5 * enveloped_noise(5000, SR, channels=2, seed=8)
    target = tmp_path / "sub" / name  # a missing folder is created
    with AudioWriter(target, SR, 2, depth) as w:
        w.write(x[:, :1234])
        w.write(x[:, 1234:])
    assert w.frames == 5000 and w.clipped == 0
    info = sf.info(str(target))
    assert info.subtype == subtype
    assert info.format == ("FLAC" if name.lower().endswith(".flac") else "WAV")
    assert (info.samplerate, info.channels, info.frames) == (SR, 2, 5000)
    y = sf.read(str(target), dtype="float32")[0].T
    tol = {"FLOAT": 0, "PCM_24": 2**-22, "PCM_16": 2**-14}[subtype]
    assert np.max(np.abs(y - x)) <= tol
    assert sorted(p.name for p in target.parent.iterdir()) == [name]


def test_writer_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.flac"
    with pytest.raises(RuntimeError, match="boom"), AudioWriter(target, SR, 1) as w:
        w.write(np.zeros((1, 1000), np.float32))
        assert any(p.suffix == ".partial" for p in tmp_path.iterdir())  # written beside the target
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.wav"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), AudioWriter(target, SR, 1) as w:
        w.write(np.zeros((1, 10), np.float32))
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


@pytest.mark.parametrize("fails", ["write", "close"])
def test_a_failed_write_or_close_is_one_output_error_and_leaves_nothing(tmp_path: Path, fails: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # libsndfile says only "System error." when the disk is full; a close that fails (the header
    # is written then) must not rename the broken file into place
    target = tmp_path / "out.wav"
    target.write_bytes(b"old")

    real = getattr(sf.SoundFile, fails)

    def broken(self, *args):  # type: ignore[no-untyped-def]
        if fails == "close":
            if self.closed:  # soundfile's __del__ closes again
                return
            real(self)  # the handle is gone, the header may not be
        raise sf.SoundFileRuntimeError("System error.")

    monkeypatch.setattr(sf.SoundFile, fails, broken)
    with pytest.raises(OutputError, match=r"out\.wav: writing failed \(System error\.\)"):
        with AudioWriter(target, SR, 1) as w:
            w.write(np.zeros((1, 10), np.float32))
    usage = shutil.disk_usage
    monkeypatch.setattr(audio.shutil, "disk_usage", lambda p: usage(p)._replace(free=4096))
    with pytest.raises(OutputError, match=r"out\.wav: no space left on the device"):
        with AudioWriter(target, SR, 1) as w:
            w.write(np.zeros((1, 10), np.float32))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_written_by_mp3fix(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "a.flac", tmp_path / "b.wav"
    with AudioWriter(ours, SR, 1, tags={"software": "mp3fix 0.1.0 (highs -6 dB)"}) as w:
        w.write(np.zeros((1, 10), np.float32))
    sf.write(theirs, np.zeros(10, np.float32), SR)
    (tmp_path / "c.mp3").write_bytes(b"x")
    (tmp_path / "d.wav").write_bytes(b"not a wav")
    assert [audio.written_by_mp3fix(tmp_path / n) for n in ("a.flac", "b.wav", "c.mp3", "d.wav")] == [
        True, False, False, False]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_written_file_gets_the_usual_permissions(tmp_path: Path, mask: int) -> None:
    """Not the temporary file's private 0600: what a new file of the user's gets."""
    old = os.umask(mask)
    try:
        with AudioWriter(tmp_path / "out.flac", SR, 1) as w:
            w.write(np.zeros((1, 100), np.float32))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.flac").stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("name,depth", [("c.wav", "16"), ("c.wav", "24"), ("c.flac", "16"), ("c.flac", "24")])
def test_integer_formats_clamp_and_count(tmp_path: Path, name: str, depth: str) -> None:
    x = np.array([[0.5, 1.5, -2.0, 1.0, -1.0, 0.0], [1.01, 0.0, 0.0, 0.0, 0.0, -1.0001]], np.float32)
    target = tmp_path / name
    with AudioWriter(target, SR, 2, depth) as w:
        w.write(x)
        w.write(x)
    assert w.clipped == 2 * 4
    y = sf.read(str(target), dtype="float32")[0].T
    assert np.all(np.abs(y) <= 1.0)
    lsb = 2.0 ** (1 - int(depth))
    expected = np.tile(np.clip(x, -1, 1), 2)
    assert np.max(np.abs(y - expected)) <= lsb


def test_float_wav_keeps_overs(tmp_path: Path) -> None:
    x = np.array([[0.5, 1.5, -2.0]], np.float32)
    with AudioWriter(tmp_path / "f.wav", SR, 1) as w:
        w.write(x)
    assert w.clipped == 0
    np.testing.assert_array_equal(sf.read(str(tmp_path / "f.wav"), dtype="float32")[0], x[0])


@pytest.mark.parametrize("name", ["out.mp3", "out.ogg", "out", "out.wav.txt"])
def test_bad_extension_is_output_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError):
        output_format(tmp_path / name)
    with pytest.raises(OutputError):
        AudioWriter(tmp_path / name, SR, 2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,depth", [("o.flac", "float"), ("o.wav", "8"), ("o.wav", "32")])
def test_bad_bit_depth_is_output_error(tmp_path: Path, name: str, depth: str) -> None:
    with pytest.raises(OutputError):
        output_subtype(tmp_path / name, depth)


# ---------------------------------------------------------------- tags


def test_ffmetadata_parsing_unescapes_maps_names_and_stops_at_sections() -> None:
    text = ("\ufeff;FFMETADATA1\n".lstrip("\ufeff") + "TITLE=a\\=b\\;c\\\nsecond line\n#note=skip\n"
            "track=3/12\nyear=2001\ndate=1999\nalbum_artist=not kept\nencoder=Lavf\ngenre=  \n"
            "[STREAM]\nartist=a stream's, not the file's\n")
    assert parse_ffmetadata(text) == {"title": "a=b;c\nsecond line", "tracknumber": "3/12", "date": "2001"}
    assert parse_ffmetadata("") == {}
    assert parse_ffmetadata("artist=no newline at the end") == {"artist": "no newline at the end"}


@pytest.mark.parametrize("ext,args", [("mp3", ["-c:a", "libmp3lame", "-b:a", "32k"]),
                                      ("ogg", ["-c:a", "libvorbis", "-q:a", "0"]),
                                      ("m4a", ["-c:a", "aac", "-b:a", "48k"])])
def test_tags_are_read_from_common_containers(folder: Path, stereo_src: tuple[np.ndarray, Path], ext: str,
                                              args: list[str]) -> None:
    out = folder / f"tagged.{ext}"
    tags = {"title": "Ünïcode; T=1", "artist": "The Band", "album": "Best Of", "date": "1999", "genre": "Rock"}
    meta = [x for k, v in tags.items() for x in ("-metadata", f"{k}={v}")]
    ffmpeg("-i", str(stereo_src[1]), *args, *meta, str(out))
    assert {k: v for k, v in read_tags(out).items() if k in tags} == tags
    assert read_tags(stereo_src[1]) == {}  # none: nothing made up
    assert read_tags(folder / "missing.mp3") == {}  # unreadable: no tags, no error


@pytest.mark.parametrize("name", ["t.wav", "t.flac"])
def test_writer_writes_tags_and_skips_what_it_cannot(tmp_path: Path, name: str) -> None:
    tags = {"title": "Ünïcode", "artist": "A", "tracknumber": "3/12", "software": "mp3fix test"}
    with AudioWriter(tmp_path / name, SR, 2, tags={**tags, "no_such_field": "x"}) as w:
        w.write(np.zeros((2, 1000), np.float32))
    with sf.SoundFile(tmp_path / name) as f:
        meta = f.copy_metadata()
    assert {k: meta.get(k, "").split(" (libsndfile")[0] for k in tags} == tags


def test_long_tags_are_cut_for_wav_and_kept_for_flac(tmp_path: Path) -> None:
    """libsndfile's WAV writer drops long tags (and, past about 64 kB, breaks the
    file); a WAV gets each cut to WAV_TAG_BYTES on a character boundary."""
    from mp3fix.audio import WAV_TAG_BYTES

    tags = {"title": "T", "artist": "A", "comment": "é" * 35000}  # 70000 bytes of UTF-8
    x = np.full((2, 1000), 0.25, np.float32)
    for name in ("long.wav", "long.flac"):
        with AudioWriter(tmp_path / name, SR, 2, tags=tags) as w:
            w.write(x)
        with sf.SoundFile(tmp_path / name) as f:
            meta, data = f.copy_metadata(), f.read()
        np.testing.assert_allclose(data.T, x, atol=1e-6)
        assert meta["title"] == "T" and meta["artist"] == "A"
        want = "é" * (WAV_TAG_BYTES // 2) if name.endswith(".wav") else tags["comment"]
        assert meta["comment"] == want
