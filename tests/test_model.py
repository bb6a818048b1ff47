"""Tests for mp3fix.model: the sidecar's level calibration of the restored band and its
dropout filling under the cutoff."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mp3fix.errors import ModelError
from mp3fix.model import ModelConfig, extension_gain, extension_shelf, fill_holes, hole_fill_bins, load_config
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


def test_hole_fill_applies_only_within_its_cutoff_range() -> None:
    assert hole_fill_bins(256, ModelConfig()) == 0  # off by default
    cfg = ModelConfig(hole_fill_bins=96, hole_fill_hz=[9000.0, 12500.0])
    assert hole_fill_bins(_bin(11000, cfg), cfg) == 96
    assert hole_fill_bins(_bin(8000, cfg), cfg) == 0
    assert hole_fill_bins(_bin(15000, cfg), cfg) == 0
    # never so deep that less than the copied band's width is left below it
    wide = ModelConfig(hole_fill_bins=96, hole_fill_hz=[0.0, 22050.0])
    assert hole_fill_bins(96 + wide.copy_width_bins, wide) == 96
    assert hole_fill_bins(95 + wide.copy_width_bins, wide) == 95
    assert hole_fill_bins(86, wide) == 86 - wide.copy_width_bins  # a 3.7 kHz cutoff (16 kbit/s)
    assert hole_fill_bins(wide.copy_width_bins, wide) == 0


def test_fill_holes_takes_the_fill_only_where_the_mp3_dropped_out() -> None:
    mp3 = np.ones((1, 8, 3), np.complex64)
    mp3[0, 5, 1] = 0.01  # 40 dB down: a dropout
    mp3[0, 6, 1] = 0.1  # 20 dB down: content, kept
    mp3[0, 2, 1] = 0.0  # a dropout below the band: not touched
    out = mp3.copy()
    out[0, 7] = 5.0  # the restoration's own bins (the cutoff and up) stay as they are
    fill = np.full_like(mp3, 2.0j)
    res = fill_holes(out, fill, mp3, lo=4, hi=7, db=30.0)
    assert res is out
    assert out[0, 5, 1] == 2.0j
    changed = np.argwhere(out != np.where(np.arange(8)[None, :, None] == 7, 5.0, mp3))
    assert changed.tolist() == [[0, 5, 1]]
    # at a 10 dB threshold the 20 dB dip counts as a dropout too
    out = fill_holes(mp3.copy(), fill, mp3, lo=4, hi=7, db=10.0)
    assert out[0, 6, 1] == 2.0j and out[0, 5, 1] == 2.0j and out[0, 4, 1] == 1.0


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


def test_sidecar_with_more_global_z_channels_than_z_channels_is_refused(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    shutil.copy(FILL_MODEL, onnx)
    sidecar = json.loads(Path(str(FILL_MODEL) + ".json").read_text())
    sidecar["sha256"] = ""
    assert load_config(FILL_MODEL).z_global_channels == 0  # older sidecars: none
    for n, ok in [(1, True), (2, True), (3, False), (-1, False)]:
        sidecar["z_global_channels"] = n
        (tmp_path / "m.onnx.json").write_text(json.dumps(sidecar))
        if ok:
            assert load_config(onnx).z_global_channels == n
        else:
            with pytest.raises(ModelError, match="z_global_channels"):
                load_config(onnx)


def test_shelf_is_per_bin_interpolated_in_hz_and_flat_beyond_the_points() -> None:
    assert not extension_shelf(400, ModelConfig()).any()  # no points: no gain
    cfg = ModelConfig(extension_shelf_db=[[19250.0, -24.0], [18750.0, 0.0]])  # any order
    g = extension_shelf(_bin(5000, cfg), cfg)  # from any cutoff by default
    assert g.shape == (cfg.n_bins,) and g.dtype == np.float32
    assert not g[: _bin(18700, cfg)].any()
    assert g[_bin(19300, cfg):] == pytest.approx(-24.0 * DB)
    k = _bin(19000, cfg)
    f = k * cfg.sample_rate / cfg.n_fft
    assert g[k] == pytest.approx(-(f - 18750.0) / 500.0 * 24.0 * DB, rel=1e-5)


def test_shelf_applies_only_from_its_cutoff_on() -> None:
    cfg = ModelConfig(extension_shelf_db=[[18750.0, 0.0], [19250.0, -40.0]], extension_shelf_from_hz=13000.0)
    assert not extension_shelf(_bin(11000, cfg), cfg).any()  # a 64 kbit/s cutoff: none
    assert extension_shelf(_bin(17000, cfg), cfg)[-1] == pytest.approx(-40.0 * DB)  # 128 kbit/s: all of it
