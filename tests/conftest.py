"""Shared fixtures: tiny test models and synthetic audio files.

Audio is synthesised here (no committed audio): a stereo chirp + noise signal
low-passed at 5 kHz, and MP3s encoded from it with the ffmpeg that
imageio-ffmpeg ships. Files are made once per session; tests that write next to
their input copy them into their own ``tmp_path`` first (``copy_to``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, chirp, sosfilt

DATA = Path(__file__).resolve().parent / "data"
RATE = 44100


@pytest.fixture(scope="session")
def identity_model() -> Path:
    """ONNX generator whose output is its input: the pipeline reconstructs the input."""
    return DATA / "identity.onnx"


@pytest.fixture(scope="session")
def fill_model() -> Path:
    """ONNX generator that adds z-dependent energy above the detected cutoff."""
    return DATA / "fill.onnx"


def ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def encode_mp3(src: Path, dst: Path, *args: str) -> Path:
    """Encode ``src`` with libmp3lame; ``args`` go before the output (rate, bitrate...)."""
    subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(src),
                    "-c:a", "libmp3lame", *args, str(dst)], check=True)
    return dst


def synth_signal(seconds: float = 3.0, rate: int = RATE, seed: int = 1) -> np.ndarray:
    """(n, 2) float32: a 100 Hz-8 kHz chirp left, white noise right, low-passed at 5 kHz."""
    t = np.arange(int(seconds * rate)) / rate
    left = 0.4 * chirp(t, f0=100.0, t1=seconds, f1=8000.0, method="logarithmic")
    right = 0.3 * np.random.default_rng(seed).standard_normal(t.size)
    sos = butter(8, 5000.0, fs=rate, output="sos")
    return sosfilt(sos, np.stack([left, right], axis=1), axis=0).astype(np.float32)


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session folder holding the synthetic inputs below (do not write into it)."""
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def lowpass_wav(audio_dir: Path) -> Path:
    """3 s stereo 44.1 kHz float WAV, band-limited at 5 kHz."""
    path = audio_dir / "lowpass.wav"
    sf.write(path, synth_signal(), RATE, subtype="FLOAT")
    return path


@pytest.fixture(scope="session")
def stereo_mp3(audio_dir: Path, lowpass_wav: Path) -> Path:
    """The low-passed signal as a 16 kHz stereo 32 kbit/s MP3."""
    return encode_mp3(lowpass_wav, audio_dir / "stereo32k.mp3", "-ar", "16000", "-b:a", "32k")


@pytest.fixture(scope="session")
def mono_mp3(audio_dir: Path, lowpass_wav: Path) -> Path:
    """The low-passed signal downmixed to a 16 kHz mono 16 kbit/s MP3."""
    return encode_mp3(lowpass_wav, audio_dir / "mono16k.mp3", "-ac", "1", "-ar", "16000", "-b:a", "16k")


@pytest.fixture
def copy_to(tmp_path: Path):
    """copy_to(src, name=None, folder=tmp_path) -> a fresh copy a test may write beside."""

    def copy(src: Path, name: str | None = None, folder: Path | None = None) -> Path:
        dst = (folder or tmp_path) / (name or src.name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst

    return copy
