"""MP3 frame-level facts ffmpeg does not tell us: gapless tag and truncation.

LAME writes its encoder delay in a "LAME" extension of the Xing/Info frame; when
it is there, ffmpeg trims the delay itself and decodes sample-exact. The ``lame``
command line at the low sample rates it picks for 16 and 32 kbit/s (8 and
16 kHz) writes no such frame (it would not fit at that bitrate; ffmpeg's muxer
fits it by writing that one frame at a higher bitrate), and every decoder then
returns the audio ``STANDARD_DELAY`` samples late (576 encoder + 529 decoder
delay, at the file's rate). We detect that case so the decoder can trim it.
We also walk the frame headers to notice a file whose last frame was cut off,
which ffmpeg decodes silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STANDARD_DELAY = 576 + 529

_BITRATES = {
    1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
_RATES = {1: [44100, 48000, 32000], 2: [22050, 24000, 16000], 25: [11025, 12000, 8000]}


@dataclass(frozen=True)
class FrameHeader:
    version: int  # 1, 2 or 25 (MPEG-2.5)
    bitrate_kbps: int
    sample_rate: int
    padding: int
    mono: bool
    crc: bool

    @property
    def length(self) -> int:
        factor = 144 if self.version == 1 else 72
        return factor * self.bitrate_kbps * 1000 // self.sample_rate + self.padding

    @property
    def side_info(self) -> int:
        if self.version == 1:
            return 17 if self.mono else 32
        return 9 if self.mono else 17


def parse_header(b: bytes) -> FrameHeader | None:
    """Parse a 4-byte layer III frame header; None if it is not one."""
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return None
    ver_bits = (b[1] >> 3) & 3
    layer = (b[1] >> 1) & 3
    if ver_bits == 1 or layer != 1:  # reserved version, or not layer III
        return None
    version = {3: 1, 2: 2, 0: 25}[ver_bits]
    br_idx = b[2] >> 4
    sr_idx = (b[2] >> 2) & 3
    if br_idx in (0, 15) or sr_idx == 3:
        return None
    table = _BITRATES[1 if version == 1 else 2]
    return FrameHeader(
        version=version,
        bitrate_kbps=table[br_idx],
        sample_rate=_RATES[version][sr_idx],
        padding=(b[2] >> 1) & 1,
        mono=(b[3] >> 6) == 3,
        crc=(b[1] & 1) == 0,
    )


@dataclass(frozen=True)
class Mp3Facts:
    has_gapless_tag: bool
    frames: int
    truncated: bool
    sample_rate: int

    @property
    def start_trim(self) -> int:
        """Samples (at the file's rate) the decoder output must be trimmed by."""
        return 0 if self.has_gapless_tag else STANDARD_DELAY


def _skip_id3v2(data: bytes) -> int:
    if len(data) >= 10 and data[:3] == b"ID3":
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        footer = 10 if data[5] & 0x10 else 0
        return 10 + size + footer
    return 0


def _has_lame_tag(frame: bytes, header: FrameHeader) -> bool:
    off = 4 + (2 if header.crc else 0) + header.side_info
    tag = frame[off : off + 4]
    if tag not in (b"Xing", b"Info"):
        return False
    flags = int.from_bytes(frame[off + 4 : off + 8], "big")
    pos = off + 8 + (4 if flags & 1 else 0) + (4 if flags & 2 else 0)
    pos += (100 if flags & 4 else 0) + (4 if flags & 8 else 0)
    encoder = frame[pos : pos + 4]
    return encoder in (b"LAME", b"Lavc", b"Lavf", b"L3.9", b"GOGO")


def _looks_like_header_start(tail: bytes) -> bool:
    """Whether 1-3 bytes could be the start of a frame header (its 11 sync bits)."""
    if not 0 < len(tail) < 4 or tail[0] != 0xFF:
        return False
    return len(tail) == 1 or (tail[1] & 0xE0) == 0xE0


def inspect_mp3(path: str | Path) -> Mp3Facts | None:
    """Walk an MP3's frames. None if no two consecutive layer III frames are found."""
    data = Path(path).read_bytes()
    end = len(data)
    if end >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    pos = _skip_id3v2(data)
    # find the first header followed by a second valid one
    first = None
    while pos + 4 <= end:
        h = parse_header(data[pos : pos + 4])
        if h is not None:
            nxt = parse_header(data[pos + h.length : pos + h.length + 4])
            if nxt is not None or pos + h.length == end:
                first = h
                break
        pos += 1
    if first is None:
        return None
    gapless = _has_lame_tag(data[pos : pos + first.length], first)
    frames = 0
    truncated = False
    while pos + 4 <= end:
        h = parse_header(data[pos : pos + 4])
        if h is None:
            # trailing garbage or other tags (APE, Lyrics3): stop counting
            break
        if pos + h.length > end:
            truncated = True
            break
        frames += 1
        pos += h.length
    else:
        # 1-3 bytes left: a frame cut inside its header if they start like one
        # (the sync bits), else stray bytes (a newline, padding) after an intact file
        truncated = _looks_like_header_start(data[pos:end])
    return Mp3Facts(
        has_gapless_tag=gapless,
        frames=frames - (1 if gapless else 0),
        truncated=truncated,
        sample_rate=first.sample_rate,
    )
