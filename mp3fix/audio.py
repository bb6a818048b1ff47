"""Audio in and out: find ffmpeg, probe, stream-decode and resample, write safely.

Decoding runs one ffmpeg process per file and reads its raw float32 output in
blocks, so memory does not grow with the file. Resampling to the model rate is
done inside that process by the SoX resampler (band-limited, linear phase, no
time shift). Writing goes to a temporary file beside the target, renamed into
place only when everything succeeded.

Channel policy (explicit, per case):
- mono in: mono out (restored as one channel);
- stereo in: stereo out (restored as mid and side with the same z, then turned
  back into left and right; ``Restorer(mid_side=False)``: each channel with a z
  of its own);
- more than two channels: downmixed to stereo by ffmpeg's standard matrix, since
  the model knows nothing of surround layouts; ``SourceInfo.downmixed`` says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from mp3fix.codec import encoder_band_hz, encoder_reach_hz
from mp3fix.errors import DecodeError, FfmpegNotFoundError, OutputError
from mp3fix.mp3info import inspect_mp3

OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
SUBTYPES = {
    ("WAV", "16"): "PCM_16",
    ("WAV", "24"): "PCM_24",
    ("WAV", "float"): "FLOAT",
    ("FLAC", "16"): "PCM_16",
    ("FLAC", "24"): "PCM_24",
}
DEFAULT_BIT_DEPTH = {"WAV": "float", "FLAC": "24"}


def ffmpeg_exe() -> str:
    """The ffmpeg to use: $MP3FIX_FFMPEG, else imageio-ffmpeg's, else one on PATH.

    The pip-installed binary comes first because its build is known (it has the
    SoX resampler and libmp3lame); a system ffmpeg is the fallback.
    """
    env = os.environ.get("MP3FIX_FFMPEG")
    if env:
        return env
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # noqa: BLE001 - any failure here means "not available"
        pass
    found = shutil.which("ffmpeg")
    if found:
        return found
    raise FfmpegNotFoundError("no ffmpeg found: pip install imageio-ffmpeg, or set MP3FIX_FFMPEG")


def ffmpeg_version(exe: str | None = None) -> str:
    """The version ``exe`` (default: :func:`ffmpeg_exe`) reports; FfmpegNotFoundError
    if it cannot be run as ffmpeg."""
    exe = exe or ffmpeg_exe()
    try:
        proc = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        raise FfmpegNotFoundError(f"cannot run ffmpeg {exe}: {getattr(exc, 'strerror', None) or exc}") from exc
    first = proc.stdout.splitlines()[0] if proc.stdout else ""
    if proc.returncode != 0 or not first.startswith("ffmpeg version "):
        raise FfmpegNotFoundError(f"{exe} does not run as ffmpeg (exit code {proc.returncode})")
    return first.removeprefix("ffmpeg version ").split(" Copyright")[0]


def ffmpeg_input(path: str | Path) -> str:
    """``path`` as ffmpeg's ``-i`` must get it to read that very file: with the
    ``file:`` protocol named, since ffmpeg takes whatever comes before a colon
    in a name (``Intro: Hello.mp3``, ``pipe:1.mp3``) for a protocol."""
    return "file:" + str(path)


LAYER_I_II_DELAY = 481
# codecs whose start ffmpeg cannot place: the output may sit this early or late
UNTIMED_CODECS = ("wmav1", "wmav2", "wmapro")


@dataclass(frozen=True)
class SourceInfo:
    """What ffmpeg says about an input file's first audio stream."""

    path: Path
    codec: str
    sample_rate: int
    channels: int
    duration: float | None
    start_trim: int = 0  # samples at sample_rate to drop (MP3 without gapless tag)
    extra: dict[str, str] = field(default_factory=dict)
    bitrate_kbps: int | None = None  # the stream's (average) bitrate, where ffmpeg says it

    @property
    def encoder_band_hz(self) -> float | None:
        """The band the encoder kept at this bitrate (MP3 only), see :mod:`mp3fix.codec`."""
        return encoder_band_hz(self.codec, self.bitrate_kbps, self.channels, self.sample_rate)

    @property
    def encoder_reach_hz(self) -> float | None:
        """How high the frames of this file reach at least where the encoder, not
        the recording, set its edge (MP3 at some settings only), see :mod:`mp3fix.codec`."""
        return encoder_reach_hz(self.codec, self.bitrate_kbps, self.channels, self.sample_rate)

    @property
    def out_channels(self) -> int:
        return 1 if self.channels == 1 else 2

    @property
    def downmixed(self) -> bool:
        return self.channels > 2


_AUDIO_RE = re.compile(r"Stream #\S+.*?: Audio: (\w+).*?, (\d+) Hz, ([^,]+)")
_KBPS_RE = re.compile(r"(\d+) kb/s")
_DUR_RE = re.compile(r"Duration: (\d+):(\d+):(\d+\.\d+)")
_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "downmix": 2, "quad": 4, "hexagonal": 6, "octagonal": 8,
                    "hexadecagonal": 16, "22.2": 24}


def _layout_channels(layout: str) -> int:
    """Channel count from ffmpeg's layout text ("stereo", "5.1(side)", "6 channels")."""
    name = layout.split("(")[0].strip()
    m = re.fullmatch(r"(\d+) channels", name)
    if m:
        return int(m.group(1))
    if name in _LAYOUT_CHANNELS:
        return _LAYOUT_CHANNELS[name]
    m = re.fullmatch(r"(\d+)\.(\d+)", name)  # "4.0", "6.1", "7.1": main + LFE channels
    if m:
        return int(m.group(1)) + int(m.group(2))
    return 3  # an unknown named layout is a surround one: treat as more than stereo


def _clean_ffmpeg_message(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    prefix = re.compile(r"^(\[[^\]]*\]\s*)+")  # "[mp3float @ 0x55...] [dec:mp3float @ 0x...] "
    for ln in lines:
        if "Invalid data" in ln or "Error" in ln or "error" in ln:
            return prefix.sub("", ln)
    return prefix.sub("", lines[-1]) if lines else "unknown ffmpeg error"


def probe(path: str | Path) -> SourceInfo:
    """Read codec, rate, channels and duration; raise DecodeError for non-audio."""
    path = Path(path)
    if not path.exists():
        raise DecodeError(f"{path}: no such file")
    if path.is_dir():
        raise DecodeError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: file is empty")
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", ffmpeg_input(path)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    m = _AUDIO_RE.search(proc.stderr)
    if m is None:
        if "Invalid data" in proc.stderr or "Error opening" in proc.stderr:
            raise DecodeError(f"{path}: not a readable audio file ({_clean_ffmpeg_message(proc.stderr)})")
        raise DecodeError(f"{path}: contains no audio stream")
    codec, rate, layout = m.group(1), int(m.group(2)), m.group(3).strip()
    line = proc.stderr[m.start() :].splitlines()[0]
    kbps = _KBPS_RE.search(line)
    channels = _layout_channels(layout)
    d = _DUR_RE.search(proc.stderr)
    duration = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3)) if d else None
    # MPEG audio layers I and II: ffmpeg returns them late by their polyphase
    # filterbank's delay (512 - 31 samples, whatever the encoder), with no tag to
    # trim it by (measured: 481 samples, at 44.1 and 48 kHz)
    start_trim = LAYER_I_II_DELAY if codec in ("mp1", "mp2") else 0
    if codec.startswith("mp3"):
        facts = inspect_mp3(path)
        if facts is None:
            raise DecodeError(f"{path}: no valid MP3 frames found")
        if facts.truncated:
            raise DecodeError(f"{path}: MP3 is truncated (its last frame is cut off)")
        start_trim = facts.start_trim
    return SourceInfo(path, codec, rate, channels, duration, start_trim,
                      bitrate_kbps=int(kbps.group(1)) if kbps else None)


def decode_blocks(
    info: SourceInfo, sample_rate: int, block: int = 1 << 16, problems: list[str] | None = None
) -> Iterator[np.ndarray]:
    """Yield float32 blocks of shape (channels, n) at ``sample_rate``.

    Trims a missing-gapless-tag delay, resamples with soxr and downmixes more
    than two channels, all inside ffmpeg. Raises DecodeError if ffmpeg fails or
    produces no samples. Damaged data that ffmpeg decodes around (a corrupt
    frame in the middle: it skips it and goes on) is no failure; one line
    saying what ffmpeg found is appended to ``problems`` when given. Samples
    that are not finite (a float WAV can hold NaN or infinity) are set to 0
    and counted there too.
    """
    channels = info.out_channels
    filters = []
    if info.start_trim:
        filters.append(f"atrim=start_sample={info.start_trim},asetpts=PTS-STARTPTS")
    if info.sample_rate != sample_rate:
        filters.append(f"aresample={sample_rate}:resampler=soxr:precision=28")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", ffmpeg_input(info.path),
           "-map", "0:a:0", "-vn"]
    if filters:
        cmd += ["-af", ",".join(filters)]
    cmd += ["-ac", str(channels), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errfile)
        assert proc.stdout is not None
        frame_bytes = 4 * channels
        want = block * frame_bytes
        bad = [0]  # samples that were not finite
        total = 0
        pending = b""
        try:
            while True:
                chunk = proc.stdout.read(want - len(pending))
                if not chunk:
                    break
                pending += chunk
                if len(pending) < want:
                    continue
                arr = np.frombuffer(pending, dtype="<f4").reshape(-1, channels).T
                pending = b""
                total += arr.shape[1]
                yield _finite(arr, bad)
            usable = len(pending) - len(pending) % frame_bytes
            if usable:
                arr = np.frombuffer(pending[:usable], dtype="<f4").reshape(-1, channels).T
                total += arr.shape[1]
                yield _finite(arr, bad)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        errfile.seek(0)
        stderr = errfile.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise DecodeError(f"{info.path}: decoding failed ({_clean_ffmpeg_message(stderr)})")
    if total == 0:
        raise DecodeError(f"{info.path}: no audio could be decoded")
    if problems is not None:
        if stderr.strip():
            problems.append(f"damaged data in the input, decoded around ({_clean_ffmpeg_message(stderr)})")
        if bad[0]:
            problems.append(f"{bad[0]} samples that were not numbers (NaN or infinite) set to 0")


def _finite(arr: np.ndarray, bad: list[int]) -> np.ndarray:
    """A contiguous copy of ``arr`` with NaN and infinities set to 0, counted in ``bad[0]``."""
    out = np.ascontiguousarray(arr)
    ok = np.isfinite(out)
    if not ok.all():
        out = np.where(ok, out, np.float32(0.0))
        bad[0] += int(out.size - ok.sum())
    return out


def decode(path: str | Path, sample_rate: int) -> tuple[np.ndarray, SourceInfo]:
    """Decode a whole file into memory (for tests, benchmarks and training data)."""
    info = probe(path)
    blocks = list(decode_blocks(info, sample_rate))
    return np.concatenate(blocks, axis=1), info


# ffmpeg's names for a file's tags (lower-cased; ID3, Vorbis comments, RIFF INFO
# and MP4 atoms all come out under these) -> the fields libsndfile writes to a
# WAV (RIFF INFO) and a FLAC (Vorbis comments). Others (album artist,
# composer, album art) have no field there and are not kept.
_TAG_FIELDS = {"title": "title", "artist": "artist", "album": "album", "date": "date", "year": "date",
               "track": "tracknumber", "tracknumber": "tracknumber", "genre": "genre", "comment": "comment",
               "copyright": "copyright", "license": "license"}


def parse_ffmetadata(text: str) -> dict[str, str]:
    """The global tags of ffmpeg's ``-f ffmetadata`` output, under soundfile's
    field names (``_TAG_FIELDS``; the first of two names for one field wins).
    Lines starting with ``;`` or ``#`` are comments; a backslash escapes the
    next character (``=``, ``;``, ``#``, ``\\`` or a newline inside a value);
    the first ``[SECTION]`` (streams, chapters) ends the global tags."""
    entries: list[tuple[str, str]] = []
    key: list[str] = []
    value: list[str] | None = None
    line_start, comment = True, False
    chars = iter(text)
    for ch in chars:
        if line_start:
            line_start = False
            if ch in ";#":
                comment = True
            elif ch == "[":
                break
        if ch == "\n":
            if value is not None and not comment:
                entries.append(("".join(key), "".join(value)))
            key, value, line_start, comment = [], None, True, False
            continue
        if comment:
            continue
        if ch == "\\":
            ch = next(chars, "")
        elif ch == "=" and value is None:
            value = []
            continue
        (key if value is None else value).append(ch)
    if value is not None and not comment:
        entries.append(("".join(key), "".join(value)))
    tags: dict[str, str] = {}
    for k, v in entries:
        field_name = _TAG_FIELDS.get(k.strip().lower())
        if field_name and v.strip() and field_name not in tags:
            tags[field_name] = v.strip()
    return tags


# libsndfile's RIFF INFO writer drops a WAV tag longer than about 2 kB (and
# others with it) and writes a broken file past about 64 kB; ten tags of this
# many bytes each were written and read back whole
WAV_TAG_BYTES = 1000


def _clip_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def read_tags(path: str | Path) -> dict[str, str]:
    """The tags of ``path`` that a WAV or FLAC can hold (:func:`parse_ffmetadata`):
    the file's own, and where it has none for a field, its first audio
    stream's (Ogg Vorbis and Opus keep their comments there). Empty when
    ffmpeg cannot read them: missing tags never fail a restoration."""
    tags: dict[str, str] = {}
    for scope in ([], ["-map_metadata", "0:s:a:0"]):
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", ffmpeg_input(path), *scope,
               "-f", "ffmetadata", "-"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return tags
        if proc.returncode != 0:
            return tags
        tags = {**parse_ffmetadata(proc.stdout.decode("utf-8", "replace")), **tags}
    return tags


def written_by_mp3fix(path: str | Path) -> bool:
    """Whether ``path`` is a WAV or FLAC whose ``software`` tag says mp3fix wrote
    it (an earlier run's output, which a folder scan must not take for an input)."""
    if Path(path).suffix.lower() not in OUTPUT_FORMATS:
        return False
    try:
        with sf.SoundFile(str(path)) as f:
            return (f.software or "").startswith("mp3fix ")
    except (sf.SoundFileError, OSError, RuntimeError):
        return False


def output_format(path: str | Path) -> str:
    """'WAV' or 'FLAC' from the extension; OutputError otherwise."""
    ext = Path(path).suffix.lower()
    if ext not in OUTPUT_FORMATS:
        raise OutputError(f"{path}: output must end in .wav or .flac")
    return OUTPUT_FORMATS[ext]


def output_subtype(path: str | Path, bit_depth: str | None) -> str:
    fmt = output_format(path)
    depth = bit_depth or DEFAULT_BIT_DEPTH[fmt]
    key = (fmt, str(depth))
    if key not in SUBTYPES:
        choices = ", ".join(d for f, d in SUBTYPES if f == fmt)
        raise OutputError(f"{fmt} cannot be written at bit depth {depth} (choose {choices})")
    return SUBTYPES[key]


_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def _no_peak_chunk(f: sf.SoundFile) -> None:
    """Stop libsndfile adding a PEAK chunk to float WAVs: it holds the current
    time, which would make two runs with the same seed differ byte for byte.
    soundfile has no public call for this, so use its libsndfile handle."""
    snd = getattr(sf, "_snd", None)
    ffi = getattr(sf, "_ffi", None)
    handle = getattr(f, "_file", None)
    if snd is not None and ffi is not None and handle is not None:
        snd.sf_command(handle, _SFC_SET_ADD_PEAK_CHUNK, ffi.NULL, 0)


def _umask() -> int:
    """The process's umask (os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_error(path: Path, exc: Exception) -> OutputError:
    """One line for a failed write: libsndfile says only "System error.", so a
    full disk (the usual cause) is named from the free space left."""
    try:
        full = shutil.disk_usage(path.parent).free < (1 << 20)
    except OSError:
        full = False
    if full:
        return OutputError(f"{path}: no space left on the device")
    detail = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    return OutputError(f"{path}: writing failed ({detail})")


def temp_prefix(path: Path) -> str:
    """The hidden temporary name's start for ``path``: ``.NAME.``, the name cut
    short enough (on a character boundary) that the temporary name stays within
    the 255 bytes a file name may have wherever the final one does."""
    return f".{_clip_utf8(path.stem, 200)}."


class AudioWriter:
    """Stream blocks to ``path`` through a temporary file that is renamed on success.

    ``tags``: soundfile string fields (title, artist, ... software) to write.

    Integer formats cannot hold samples beyond full scale; they are clamped and
    counted in ``clipped`` so the caller can warn. Float WAV never clips.

    As a context manager it commits on success and aborts on any exception.
    Several files written together (one per variant) use the steps one by one
    so that none is renamed until all are complete: ``open``, ``write``,
    ``finish`` (close; the temporary file stays), ``commit`` (rename into
    place), and ``abort`` (close and delete the temporary file) at any point.
    A failed write (a full disk) raises ``OutputError``.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, bit_depth: str | None = None,
                 tags: dict[str, str] | None = None):
        self.path = Path(path)
        self.tags = dict(tags or {})
        self.format = output_format(self.path)
        self.subtype = output_subtype(self.path, bit_depth)
        self.sample_rate = sample_rate
        self.channels = channels
        self.clipped = 0
        self.frames = 0
        self._tmp: Path | None = None
        self._file: sf.SoundFile | None = None

    def open(self) -> AudioWriter:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=temp_prefix(self.path), suffix=".partial", dir=folder)
            # mkstemp makes the file private (0600); the finished file should get
            # the permissions any new file of the user's would (0666 minus umask)
            if hasattr(os, "fchmod"):  # POSIX; Windows has no such modes to set
                os.fchmod(fd, 0o666 & ~_umask())
            os.close(fd)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write there ({exc.strerror})") from exc
        self._tmp = Path(name)
        try:
            self._file = sf.SoundFile(
                str(self._tmp), "w", samplerate=self.sample_rate, channels=self.channels,
                format=self.format, subtype=self.subtype,
            )
        except (sf.SoundFileError, OSError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise _write_error(self.path, exc) from exc
        _no_peak_chunk(self._file)
        for name, value in self.tags.items():  # before any audio: libsndfile writes them in the header
            if self.format == "WAV":
                value = _clip_utf8(value, WAV_TAG_BYTES)
            try:
                setattr(self._file, name, value)
            except (RuntimeError, AttributeError, UnicodeError):
                pass  # a tag the format cannot hold (too long, say) is left out, not worth failing for
        return self

    def write(self, block: np.ndarray) -> None:
        """Write a (channels, n) float block."""
        assert self._file is not None
        data = np.asarray(block, dtype=np.float32).T
        if self.subtype != "FLOAT":
            over = np.abs(data) > 1.0
            n_over = int(over.sum())
            if n_over:
                self.clipped += n_over
                data = np.clip(data, -1.0, 1.0)
        try:
            self._file.write(data)
        except (sf.SoundFileError, OSError) as exc:
            raise _write_error(self.path, exc) from exc
        self.frames += data.shape[0]

    def finish(self) -> None:
        """Close the temporary file (libsndfile writes its header now); not yet renamed."""
        if self._file is not None and not self._file.closed:
            try:
                self._file.close()
            except (sf.SoundFileError, OSError) as exc:
                raise _write_error(self.path, exc) from exc

    def commit(self) -> None:
        """Rename the finished temporary file into place."""
        assert self._tmp is not None and (self._file is None or self._file.closed)
        os.replace(self._tmp, self.path)
        self._tmp = None

    def abort(self) -> None:
        """Drop the temporary file, whatever state it is in; never raises."""
        if self._file is not None and not self._file.closed:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - the file is deleted anyway
                pass
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> AudioWriter:
        return self.open()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.finish()
            self.commit()
        except BaseException:
            self.abort()
            raise
