"""Tests for mp3fix.model: the sidecar's level calibration of the restored band."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mp3fix.model import ModelConfig, extension_gain, load_config
from tests.helpers import FILL_MODEL

DB = np.log(10.0) / 20.0  # natural-log units per dB


def _bin(hz: float, cfg: ModelConfig) -> int:
    return round(hz * cfg.n_fft / cfg.sample_rate)


def test_no_points_no_gain() -> None:
    cfg = ModelConfig()
    assert extension_gain(100, cfg) == 0.0


def test_gain_is_interpolated_in_hz_and_flat_beyond_the_points() -> None:
    cfg = ModelConfig(extension_gain_db=[[10000.0, -2.0], [8000.0, 0.0]])  # any order
    assert extension_gain(_bin(4000, cfg), cfg) == pytest.approx(0.0)
    assert extension_gain(_bin(16000, cfg), cfg) == pytest.approx(-2.0 * DB)
    f = _bin(9000, cfg) * cfg.sample_rate / cfg.n_fft  # the bin's own frequency
    assert extension_gain(_bin(9000, cfg), cfg) == pytest.approx(-(f - 8000.0) / 2000.0 * 2.0 * DB)


def test_sidecar_without_calibration_loads_with_none(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    shutil.copy(FILL_MODEL, onnx)
    sidecar = json.loads(Path(str(FILL_MODEL) + ".json").read_text())
    sidecar.pop("extension_gain_db", None)
    sidecar["sha256"] = ""
    (tmp_path / "m.onnx.json").write_text(json.dumps(sidecar))
    assert load_config(onnx).extension_gain_db == []
    sidecar["extension_gain_db"] = [[8000, 0], [10000, -2.5]]
    (tmp_path / "m.onnx.json").write_text(json.dumps(sidecar))
    assert load_config(onnx).extension_gain_db == [[8000, 0], [10000, -2.5]]
