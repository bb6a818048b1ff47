"""Shared signal and encoding helpers for the tests (no fixtures: import what you need).

Signals are synthesised in code, never committed: noise, low-passed noise, noise
with an amplitude envelope (so cross-correlation has one clear peak), chirps and
sine bursts. MP3/Ogg/FLAC files are made with the same ffmpeg mp3fix uses.
``fake_cuda_that_falls_back`` stands in for onnxruntime-gpu on a machine without
a usable GPU.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mp3fix.audio import ffmpeg_exe

DATA = Path(__file__).resolve().parent / "data"
IDENTITY_MODEL = DATA / "identity.onnx"
FILL_MODEL = DATA / "fill.onnx"


def white_noise(n: int, channels: int | None = None, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    """Gaussian noise, shape (n,) or (channels, n), float32."""
    shape = (n,) if channels is None else (channels, n)
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def brickwall(x: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """Zero every FFT bin above ``cutoff_hz`` (an ideal low-pass along the last axis)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    spec = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spec[..., freqs > cutoff_hz] = 0.0
    return np.fft.irfft(spec, n=n, axis=-1).astype(np.float32)


def lowpass_noise(n: int, cutoff_hz: float, sample_rate: int = 44100, channels: int | None = None,
                  seed: int = 0, scale: float = 0.1) -> np.ndarray:
    """White noise through an ideal low-pass: what an MP3 encoder leaves behind."""
    return brickwall(white_noise(n, channels, seed, scale), cutoff_hz, sample_rate)


def enveloped_noise(n: int, sample_rate: int, channels: int | None = None, seed: int = 0) -> np.ndarray:
    """Broadband noise under a random smooth amplitude envelope (10 Hz changes).

    The noise gives a sharp correlation peak, the envelope makes it unique even
    after a lossy codec has replaced the fine structure.
    """
    rng = np.random.default_rng(seed + 1000)
    knots = max(2, int(n / sample_rate * 10) + 2)
    env = np.interp(np.arange(n), np.linspace(0, n - 1, knots), rng.uniform(0.05, 1.0, knots))
    return (white_noise(n, channels, seed, scale=0.2) * env.astype(np.float32)).astype(np.float32)


def chirp(n: int, sample_rate: int, f0: float = 50.0, f1: float = 15000.0, amp: float = 0.3) -> np.ndarray:
    """Linear sine sweep from f0 to f1 over n samples."""
    t = np.arange(n) / sample_rate
    dur = max(n / sample_rate, 1e-9)
    return (amp * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * dur)))).astype(np.float32)


def sine_bursts(n: int, sample_rate: int, freq: float = 1000.0, period: float = 0.25,
                amp: float = 0.5) -> np.ndarray:
    """A sine switched on for the first half of every ``period`` seconds."""
    t = np.arange(n) / sample_rate
    gate = (np.mod(t, period) < period / 2).astype(np.float32)
    return (amp * gate * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> Path:
    """Write (n,) or (channels, n) audio as WAV."""
    data = np.asarray(x, dtype=np.float32)
    sf.write(str(path), data.T if data.ndim == 2 else data, sample_rate, subtype=subtype, format="WAV")
    return path


def ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg quietly; raise with its stderr on failure."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {proc.stderr}")


def encode(src: Path, dst: Path, channels: int, sample_rate: int, bitrate_k: int | None = None,
           codec: str = "libmp3lame") -> Path:
    """Encode ``src`` with ffmpeg (``-c:a codec -b:a BRk`` when a bitrate is given)."""
    args = ["-i", str(src), "-ac", str(channels), "-ar", str(sample_rate), "-c:a", codec]
    if bitrate_k is not None:
        args += ["-b:a", f"{bitrate_k}k"]
    ffmpeg(*args, str(dst))
    return dst


def make_mp3(tmp: Path, name: str, x: np.ndarray, src_rate: int, channels: int, mp3_rate: int,
             bitrate_k: int) -> Path:
    """Write ``x`` (at ``src_rate``) as WAV, then encode an MP3 from it."""
    wav = write_wav(tmp / f"{name}.src.wav", x, src_rate)
    return encode(wav, tmp / f"{name}.mp3", channels, mp3_rate, bitrate_k)


def xcorr_lag(ref: np.ndarray, sig: np.ndarray, max_lag: int) -> int:
    """Lag (in samples) by which ``sig`` is late relative to ``ref`` (negative: early).

    Full cross-correlation via FFT over the common length, searched in
    [-max_lag, max_lag].
    """
    a = np.asarray(ref, dtype=np.float64).ravel()
    b = np.asarray(sig, dtype=np.float64).ravel()
    n = min(a.size, b.size)
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    cc = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)
    lags = np.arange(-max_lag, max_lag + 1)
    return int(lags[np.argmax(cc[lags % size])])


def stft_mag(x: np.ndarray, n_fft: int = 1024, hop: int = 512) -> np.ndarray:
    """|STFT| with mp3fix's own transform, (..., bins, frames)."""
    from mp3fix.spectral import stft

    return np.abs(stft(x, n_fft, hop))


def fake_cuda_that_falls_back(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Make onnxruntime offer CUDA but build CPU-only sessions, as onnxruntime-gpu
    does without a usable driver; returns the provider lists sessions were asked for."""
    import onnxruntime as ort

    real = ort.InferenceSession
    asked: list[list[str]] = []

    def session(path: str, sess_options: object = None, providers: list | None = None) -> object:
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]  # (name, options) or name
        asked.append(names)
        cpu_only = [p for p in names if p != "CUDAExecutionProvider"] or ["CPUExecutionProvider"]
        return real(path, sess_options=sess_options, providers=cpu_only)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session)
    return asked
