"""Tests for mp3fix.runtime: provider choice, the Generator wrapper, sidecar checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mp3fix import runtime
from mp3fix.errors import DeviceError, ModelError
from mp3fix.runtime import Generator, choose_providers
from tests.helpers import FILL_MODEL, IDENTITY_MODEL, fake_cuda_that_falls_back

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"


# ---------------------------------------------------------------- providers


def test_auto_on_cpu_only() -> None:
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("cpu", [CPU]) == [CPU]


def test_auto_prefers_cuda_and_keeps_cpu_last() -> None:
    got = choose_providers("auto", [TRT, CUDA, CPU])
    assert got[0] == CUDA and got[-1] == CPU
    got = choose_providers("cuda", [CPU, CUDA])
    assert got[0] == CUDA and got[-1] == CPU


def test_explicit_cpu_wins_over_cuda() -> None:
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]


def test_cuda_without_provider_says_how_to_get_it() -> None:
    with pytest.raises(DeviceError, match=r"pip install '\.\[gpu\]'"):
        choose_providers("cuda", [CPU])


@pytest.mark.parametrize("device", ["gpu", "CUDA", "", "tpu"])
def test_unknown_device(device: str) -> None:
    with pytest.raises(DeviceError, match="unknown device"):
        choose_providers(device, [CUDA, CPU])


def test_default_uses_onnxruntime_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "available_providers", lambda: [CUDA, CPU])
    assert choose_providers("auto") == [CUDA, CPU]
    monkeypatch.setattr(runtime, "available_providers", lambda: [CPU])
    assert choose_providers("auto") == [CPU]


def test_generator_cuda_request_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "available_providers", lambda: [CPU])
    with pytest.raises(DeviceError, match=r"pip install '\.\[gpu\]'"):
        Generator(IDENTITY_MODEL, device="cuda")


def test_auto_goes_on_on_cpu_when_cuda_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_cuda_that_falls_back(monkeypatch)
    gen = Generator(IDENTITY_MODEL, device="auto", threads=1)
    assert asked == [[CUDA, CPU]]
    assert gen.device == "cpu"
    assert gen.notice == "CUDA is not usable here (onnxruntime fell back to CPU); running on CPU"
    logmag, mask, z = _inputs(8)
    np.testing.assert_array_equal(gen(logmag, mask, z), logmag)


def test_explicit_cuda_that_falls_back_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda_that_falls_back(monkeypatch)
    with pytest.raises(DeviceError, match="fell back to CPU") as info:
        Generator(IDENTITY_MODEL, device="cuda", threads=1)
    assert "\n" not in str(info.value)


def test_cuda_sessions_preload_the_cuda_libraries_quietly(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """onnxruntime-gpu finds pip's CUDA and cuDNN libraries only once preload_dlls
    has loaded them; it is called before a CUDA session is built, never for a CPU
    one, and what it prints does not reach the user's stdout."""
    import onnxruntime as ort

    events: list[str] = []

    def preload() -> None:
        events.append("preload")
        print("WARNING: cuDNN not found")

    asked = fake_cuda_that_falls_back(monkeypatch)
    session = ort.InferenceSession
    monkeypatch.setattr(ort, "preload_dlls", preload, raising=False)
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: events.append("session") or session(*a, **k))
    Generator(IDENTITY_MODEL, device="auto", threads=1)
    assert events == ["preload", "session"] and asked == [[CUDA, CPU]]
    Generator(IDENTITY_MODEL, device="cpu", threads=1)
    assert events == ["preload", "session", "session"]
    assert capsys.readouterr().out == ""


def test_cuda_sessions_get_the_heuristic_convolution_search(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    fake_cuda_that_falls_back(monkeypatch)
    session = ort.InferenceSession
    raw: list[list] = []
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, providers=None, **k: raw.append(providers) or session(
        *a, providers=providers, **k))
    Generator(IDENTITY_MODEL, device="auto", threads=1)
    Generator(IDENTITY_MODEL, device="cpu", threads=1)
    assert raw == [[(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU], [CPU]]


def test_a_failing_or_missing_preload_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    fake_cuda_that_falls_back(monkeypatch)

    def broken() -> None:
        raise OSError("libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(ort, "preload_dlls", broken, raising=False)
    assert Generator(IDENTITY_MODEL, device="auto", threads=1).device == "cpu"
    monkeypatch.delattr(ort, "preload_dlls", raising=False)
    assert Generator(IDENTITY_MODEL, device="auto", threads=1).device == "cpu"


def test_no_notice_when_the_device_is_what_was_asked() -> None:
    assert Generator(IDENTITY_MODEL, device="cpu", threads=1).notice is None
    assert Generator(IDENTITY_MODEL, device="auto", threads=1).notice is None


# ---------------------------------------------------------------- Generator


def _copy_model(src: Path, folder: Path, **changes: object) -> Path:
    """Copy an ONNX model and its sidecar into ``folder``, changing sidecar keys."""
    dst = folder / src.name
    shutil.copyfile(src, dst)
    cfg = json.loads(src.with_name(src.name + ".json").read_text())
    cfg.update(changes)
    dst.with_name(dst.name + ".json").write_text(json.dumps(cfg))
    return dst


def _inputs(frames: int, batch: int = 3, bins: int = 512, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    logmag = rng.normal(-4, 2, (batch, 1, bins, frames)).astype(np.float32)
    mask = np.broadcast_to((np.arange(bins) >= 200).astype(np.float32)[None, None, :, None],
                           (batch, 1, bins, frames)).copy()
    z = rng.standard_normal((batch, 2, bins, frames)).astype(np.float32)
    return logmag, mask, z


def test_generator_identity_on_cpu() -> None:
    gen = Generator(IDENTITY_MODEL, device="cpu", threads=1)
    assert gen.device == "cpu" and gen.providers == [CPU]
    assert gen.config.name == "identity" and gen.config.time_multiple == 1
    logmag, mask, z = _inputs(20)
    np.testing.assert_array_equal(gen(logmag, mask, z), logmag)


@pytest.mark.parametrize("frames", [1, 31, 33, 45, 64])
def test_generator_pads_to_time_multiple(tmp_path: Path, frames: int) -> None:
    gen = Generator(_copy_model(IDENTITY_MODEL, tmp_path, time_multiple=32), device="cpu", threads=1)
    assert gen.config.time_multiple == 32
    logmag, mask, z = _inputs(frames)
    out = gen(logmag, mask, z)
    assert out.shape == logmag.shape
    np.testing.assert_array_equal(out, logmag)


@pytest.mark.parametrize("frames", [1, 33, 45])
def test_padding_does_not_change_values(tmp_path: Path, frames: int) -> None:
    # fill uses mask and z too: padded frames must not leak into the real ones
    plain = Generator(FILL_MODEL, device="cpu", threads=1)
    padded = Generator(_copy_model(FILL_MODEL, tmp_path, time_multiple=32), device="cpu", threads=1)
    logmag, mask, z = _inputs(frames, seed=frames)
    a = plain(logmag, mask, z)
    b = padded(logmag, mask, z)
    assert a.shape == b.shape == logmag.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # and fill really did something above the mask edge (so the comparison means something)
    assert np.max(np.abs(a[:, :, 300:] - logmag[:, :, 300:])) > 0.5
    np.testing.assert_array_equal(a[:, :, :150], logmag[:, :, :150])


def test_checksum_mismatch_is_model_error(tmp_path: Path) -> None:
    path = _copy_model(IDENTITY_MODEL, tmp_path, sha256="0" * 64)
    with pytest.raises(ModelError, match="checksum"):
        Generator(path, device="cpu")


def test_modified_model_fails_its_checksum(tmp_path: Path) -> None:
    path = _copy_model(IDENTITY_MODEL, tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelError):
        Generator(path, device="cpu")


def test_missing_sidecar_is_model_error(tmp_path: Path) -> None:
    path = tmp_path / "lonely.onnx"
    shutil.copyfile(IDENTITY_MODEL, path)
    with pytest.raises(ModelError, match="sidecar"):
        Generator(path, device="cpu")


def test_missing_model_is_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        Generator(tmp_path / "nothing.onnx", device="cpu")


def test_invalid_sidecar_is_model_error(tmp_path: Path) -> None:
    path = _copy_model(IDENTITY_MODEL, tmp_path)
    path.with_name(path.name + ".json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid"):
        Generator(path, device="cpu")


def test_corrupt_onnx_is_model_error(tmp_path: Path) -> None:
    path = _copy_model(IDENTITY_MODEL, tmp_path, sha256="")  # no checksum: onnxruntime must notice
    path.write_bytes(b"this is not an onnx file")
    with pytest.raises(ModelError, match="cannot load model"):
        Generator(path, device="cpu")


def test_input_names_must_match_sidecar(tmp_path: Path) -> None:
    path = _copy_model(IDENTITY_MODEL, tmp_path, input_names=["spec", "mask", "z"])
    with pytest.raises(ModelError, match="do not match"):
        Generator(path, device="cpu")
