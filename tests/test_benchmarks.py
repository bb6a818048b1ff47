"""The non-learned baselines and the oracle restorations the benchmarks compare
against: pure DSP, checked on synthetic signals (no ViSQOL, no encoder)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import brickwall, enveloped_noise, stft_mag

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from baselines import band_copy, noise_fill  # noqa: E402
from oracles import below_oracle, fast_levels, oracle, third_octaves  # noqa: E402

SR = 44100
CUT_HZ = 6000.0
CUT_BIN = int(CUT_HZ / (SR / 1024))


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """(original, 'MP3'): noise below 6 kHz and noise above it, under two
    different level envelopes, and the first alone (brick-walled at 6 kHz)."""
    low = brickwall(enveloped_noise(4 * SR, SR, channels=2, seed=3), CUT_HZ, SR)
    other = enveloped_noise(4 * SR, SR, channels=2, seed=7)
    high = other - brickwall(other, CUT_HZ, SR)
    return (low + high).astype(np.float32), low.astype(np.float32)


def test_third_octaves_double_every_three_bands() -> None:
    band = third_octaves(100, 513)
    assert band[0] == 0
    assert band[125 - 100] == 0 and band[126 - 100] == 1  # 100 * 2**(1/3) = 125.99
    assert band[200 - 100] == 3 and band[199 - 100] == 2  # one octave up: band 3
    assert np.all(np.diff(band) >= 0)


@pytest.mark.parametrize("fill", [
    lambda dec, ref: band_copy(dec), lambda dec, ref: noise_fill(dec),
    lambda dec, ref: oracle(dec, ref, "frame"), lambda dec, ref: oracle(dec, ref, "mag"),
], ids=["band copy", "noise fill", "level oracle", "magnitude oracle"])
def test_extensions_leave_the_band_below_the_cutoff_alone(pair, fill) -> None:
    ref, dec = pair
    out = fill(dec, ref)
    below = slice(0, CUT_BIN - 8)
    a, b = stft_mag(dec)[..., below, 4:-4], stft_mag(out)[..., below, 4:-4]
    assert np.abs(a - b).max() <= 1e-3 * a.max()
    above = stft_mag(out)[..., CUT_BIN + 8 :, 4:-4]
    assert above.mean() > 0.05 * a.mean()  # and they do fill above it


def test_magnitude_oracle_restores_the_originals_magnitudes(pair) -> None:
    ref, dec = pair
    out = oracle(dec, ref, "mag")
    hi = slice(CUT_BIN + 8, 500)
    r, o, d = (20 * np.log10(stft_mag(x)[..., hi, 4:-4] + 1e-6) for x in (ref, out, dec))
    # copied phase makes the STFT inconsistent, so not exact: within a few dB,
    # where the MP3 is 100+ dB away
    assert np.median(np.abs(o - r)) < 4.0
    assert np.median(np.abs(d - r)) > 40.0


def test_below_oracle_takes_the_original_below_the_cutoff_and_the_restoration_above(pair) -> None:
    ref, dec = pair
    ours = band_copy(dec)  # any restoration with content above the cutoff
    out = below_oracle(dec, ours, ref)
    db = [20 * np.log10(stft_mag(x)[..., 4:-4] + 1e-6) for x in (ref, ours, out)]
    lo, hi = slice(0, CUT_BIN - 8), slice(CUT_BIN + 8, 500)
    assert np.median(np.abs(db[2][..., lo, :] - db[0][..., lo, :])) < 0.1
    assert np.median(np.abs(db[2][..., hi, :] - db[1][..., hi, :])) < 0.1
    assert np.median(np.abs(db[1][..., hi, :] - db[0][..., hi, :])) > 3.0  # the two differ up there
    full = ref  # no cutoff in it: nothing restored, nothing mended
    np.testing.assert_array_equal(below_oracle(full, full * 0.5, ref), full * 0.5)


def test_band_level_oracles_match_the_original_level_at_their_time_scale(pair) -> None:
    ref, dec = pair
    levels_ref, fast_ref = fast_levels(ref, CUT_BIN)
    per_frame = fast_levels(oracle(dec, ref, "frame"), CUT_BIN)
    static = fast_levels(oracle(dec, ref, "static"), CUT_BIN)
    copy = fast_levels(band_copy(dec), CUT_BIN)
    inner = slice(8, -8)
    # every-frame levels follow the original's envelope, frame by frame
    assert np.median(np.abs(per_frame[0] - levels_ref)[:, inner]) < 2.0
    assert np.corrcoef(per_frame[1][:, inner].ravel(), fast_ref[:, inner].ravel())[0, 1] > 0.8
    # band copy moves with the band below, which has another envelope here
    assert np.corrcoef(copy[1][:, inner].ravel(), fast_ref[:, inner].ravel())[0, 1] < 0.5
    # the static one only gets the excerpt's mean level per band right
    assert np.abs(static[0].mean(axis=1) - levels_ref.mean(axis=1)).max() < 3.0
    assert np.abs(copy[0].mean(axis=1) - levels_ref.mean(axis=1)).max() > 3.0


def test_posthoc_changes_touch_only_what_they_name(pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/posthoc.py: a shelf moves the restored band above its
    frequency by its gain and nothing below; a tilt moves it by its gain per
    octave above the cutoff; z scaled by 1 is the shipped
    restoration and z scaled by 0 differs from it; a hybrid is the restoration
    below its split and band copy above; keeping the MP3's louder bins keeps
    all of them at ratio 0 and none at a huge one; a source band keeps what
    lies below it and adds nothing above; filling the dropouts under the
    cutoff (as the shipped model does, and without the model) fills a hole
    there and nothing with 0 bins, also with one pass on the mid (which on
    equal channels is the shipped filling and gives an empty channel nothing),
    and capped at the MP3's nearby level leaves a long hole; Griffin-Lim phase
    changes the restored band's phase, not its level nor the band below; one
    z for both channels makes a stereo pair with equal channels restore equally,
    and so does restoring mid and side (as shipped), where left and right with a
    z each did not; the mid alone restored keeps the MP3's side; a candidate
    model restores as itself."""
    from posthoc import Changed

    import mp3fix.restore

    monkeypatch.setattr(mp3fix.restore, "normal_table", mp3fix.restore.normal_table)  # put back afterwards
    monkeypatch.setattr(mp3fix.restore, "restore_phase", mp3fix.restore.restore_phase)
    monkeypatch.setattr(mp3fix.restore, "draw_z", mp3fix.restore.draw_z)
    monkeypatch.setattr(mp3fix.restore, "fill_holes", mp3fix.restore.fill_holes)
    monkeypatch.setattr(mp3fix.restore, "hole_fill_bins", mp3fix.restore.hole_fill_bins)
    _, dec = pair
    run = Changed(None)
    shipped = run(dec)
    np.testing.assert_array_equal(run(dec, "z", [1.0]), shipped)
    assert not np.array_equal(run(dec, "z", [0.0]), shipped)
    np.testing.assert_array_equal(run(dec), shipped)  # the changes do not stick
    shelved = run(dec, "shelf", [15000.0, -12.0])
    top, mid = slice(int(16500 / (SR / 1024)), 500), slice(CUT_BIN + 8, int(13500 / (SR / 1024)))
    a, b = stft_mag(shipped)[..., 4:-4], stft_mag(shelved)[..., 4:-4]
    db = 20 * np.log10(b[..., top, :].mean() / a[..., top, :].mean())
    assert -13.0 < db < -11.0
    assert abs(20 * np.log10(b[..., mid, :].mean() / a[..., mid, :].mean())) < 0.5
    # a tilt of -6 dB per octave: about -6 dB one octave above the 6 kHz cutoff, about 0 just above it
    tilted = stft_mag(run(dec, "tilt", [-6.0]))[..., 4:-4]
    octave, near = slice(int(11500 / (SR / 1024)), int(12500 / (SR / 1024))), slice(CUT_BIN + 6, CUT_BIN + 12)
    assert -7.0 < 20 * np.log10(tilted[..., octave, :].mean() / a[..., octave, :].mean()) < -5.0
    assert -1.5 < 20 * np.log10(tilted[..., near, :].mean() / a[..., near, :].mean()) <= 0.0
    hybrid = run(dec, "hybrid", [9000.0])
    below, above = slice(0, int(8500 / (SR / 1024))), slice(int(9500 / (SR / 1024)), 500)
    h, bc = stft_mag(hybrid)[..., 4:-4], stft_mag(band_copy(dec))[..., 4:-4]
    assert np.abs(h[..., below, :] - a[..., below, :]).max() < 1e-3 * a.max()
    assert np.abs(h[..., above, :] - bc[..., above, :]).max() < 1e-3 * a.max()
    # the MP3 wins only where the restoration is exactly 0: nowhere under the sidecar's shelf (above
    # it, 40 dB down, a quiet restoration falls under the log floor, and the MP3's leakage is kept)
    huge = stft_mag(run(dec, "keep", [1e9]))[..., : int(18500 / (SR / 1024)), 4:-4]
    assert np.abs(huge - a[..., : huge.shape[-2], :]).max() < 1e-3 * a.max()
    kept = stft_mag(run(dec, "keep", [0.0]))[..., 4:-4]  # every bin the MP3 has is the MP3's: next to nothing
    assert kept[..., top, :].mean() < 0.1 * a[..., top, :].mean()
    sourced = stft_mag(run(dec, "source", [9000.0]))[..., 4:-4]  # the recording ends at 9 kHz: nothing above
    assert sourced[..., above, :].mean() < 0.01 * a[..., above, :].mean()
    assert abs(20 * np.log10(sourced[..., mid.start : int(8500 / (SR / 1024)), :].mean()
                             / a[..., mid.start : int(8500 / (SR / 1024)), :].mean())) < 0.5
    from mp3fix.spectral import istft, stft

    spec = stft(dec, 1024, 512)
    spec[..., CUT_BIN - 40 : CUT_BIN - 10, 100:200] = 0.0  # the encoder dropped a band for 100 frames
    holed = istft(spec, 1024, 512, dec.shape[-1])
    base = stft_mag(run(holed, "fill", [0.0, 0.0]))  # nothing filled
    hole = (..., slice(CUT_BIN - 36, CUT_BIN - 14), slice(110, 190))
    assert base[hole].mean() < 0.01 * stft_mag(dec)[hole].mean()
    for filled in (run(holed), run(holed, "fill", [48.0, 30.0]), run(holed, "copyfill", [48.0, 30.0])):
        m = stft_mag(filled)  # the shipped model fills it, and so do these two
        assert 10 * base[hole].mean() < m[hole].mean() < 3 * stft_mag(dec)[hole].mean()  # about the band's level
    # the filling's pass once on the mid: on a pair of equal channels, channel 0 as shipped (its own z);
    # a channel with nothing in it gets nothing from the other's filling
    twin_holed = np.stack([holed[0], holed[0]])
    once = run(twin_holed, "midfill", [1.0])
    np.testing.assert_allclose(once[0], run(twin_holed, "stereo", [0.0])[0], rtol=0, atol=1e-5)
    assert 10 * base[hole].mean() < stft_mag(once)[hole].mean()
    panned = run(np.stack([holed[0], np.zeros_like(holed[0])]), "midfill", [1.0])
    assert np.abs(panned[1]).max() < 1e-6 * np.abs(panned[0]).max()
    # the filling 20 dB quieter: the hole is filled about 20 dB lower (a little more: bins that no
    # longer clear the filling's threshold keep the MP3's next to nothing)
    quieter = stft_mag(run(holed, "fillgain", [-20.0]))
    ratio = 20 * np.log10(quieter[hole].mean() / stft_mag(run(holed))[hole].mean())
    assert -27.0 < ratio < -18.0
    # capped at the MP3's own level within 8 frames, a hole 100 frames long stays (nearly) empty inside
    capped = stft_mag(run(holed, "fillcap", [8.0]))
    assert capped[hole].mean() < 0.1 * stft_mag(run(holed))[hole].mean()
    # the shipped filling stops 64 bins above 0 (copy_width_bins); fillleft:16 goes deeper
    cfg = run.r.config
    assert mp3fix.restore.hole_fill_bins(80, cfg) == 16
    run(holed, "fillleft", [16.0])  # sets the rule for this call only...
    assert run.fillleft == 16 and mp3fix.restore.hole_fill_bins(80, cfg) == 64
    run(holed)  # ...and the next call puts it back
    assert mp3fix.restore.hole_fill_bins(80, cfg) == 16
    phased = run(dec, "phase", [4.0])
    assert not np.array_equal(phased, shipped)
    np.testing.assert_array_equal(run(dec), shipped)
    p = stft_mag(phased)[..., 4:-4]
    low = slice(0, CUT_BIN - 8)
    assert np.abs(p[..., low, :] - a[..., low, :]).mean() < 0.01 * a[..., low, :].mean()
    assert abs(20 * np.log10(p[..., mid, :].mean() / a[..., mid, :].mean())) < 1.0
    # another model as a change: the same model restores as shipped, another one differently
    from mp3fix.model import shipped_model_path
    from tests.helpers import FILL_MODEL

    assert np.array_equal(Changed(None, candidate=str(shipped_model_path()))(dec, "candidate", [1.0]), shipped)
    assert not np.allclose(Changed(None, candidate=str(FILL_MODEL))(dec, "candidate", [1.0]), shipped, atol=1e-3)
    twin = np.stack([dec[0], dec[0]])
    apart, linked = run(twin, "stereo", [0.0]), run(twin, "zlink", [1.0])
    assert np.abs(apart[0] - apart[1]).max() > 1e-3  # left and right, a z each: the restored bands differ
    np.testing.assert_array_equal(linked[0], linked[1])
    np.testing.assert_array_equal(linked[0], apart[0])  # channel 0 keeps its own z
    # mid and side (as shipped): equal channels have no side, which stays (next to) silent
    ms = run(twin)
    np.testing.assert_array_equal(run(twin, "stereo", [1.0]), ms)
    assert np.abs(ms[0] - ms[1]).max() < 1e-4 * np.abs(ms[0]).max()
    assert not np.allclose(shipped, run(dec, "stereo", [0.0]), atol=1e-3)  # unequal channels: not as before
    # the MP3 restored louder and brought back: 0 dB is the shipped restoration; the band under
    # the cutoff comes back as it was at any gain (the model only writes above it)
    np.testing.assert_allclose(run(dec, "gain", [0.0]), shipped, rtol=0, atol=1e-6)
    louder = stft_mag(run(dec, "gain", [10.0]))[..., 4:-4]
    assert np.abs(louder[..., low, :] - a[..., low, :]).mean() < 0.01 * a[..., low, :].mean()
    assert not np.allclose(louder[..., top, :], a[..., top, :], rtol=0.01)
    # the mid alone restored: the MP3's side comes through as it was
    mid_only = run(dec, "stereo", [2.0])
    np.testing.assert_allclose(mid_only[0] - mid_only[1], dec[0] - dec[1], rtol=0, atol=1e-5)


def test_edges_shape_is_level_free_and_stops_at_the_cutoff() -> None:
    """benchmarks/edges.py: the MP3's spectrum shape does not depend on its
    level, and bands that reach above the given top are left out (NaN)."""
    from edges import SHAPE_FROM_HZ, SIXTH, shape

    rng = np.random.default_rng(0)
    power = rng.uniform(0.5, 2.0, 512) * np.exp(-np.arange(512) / 20.0)
    a, b = shape(power, 5000.0, 30), shape(100.0 * power, 5000.0, 30)
    keep = SHAPE_FROM_HZ * SIXTH ** np.arange(1, 31) <= 5000.0
    np.testing.assert_allclose(a[keep], b[keep], atol=1e-9)
    assert np.all(np.isnan(a[~keep])) and 15 < keep.sum() < 30
    assert abs(np.nanmean(a)) < 1e-9
    assert a[0] > a[keep][-1] + 10.0  # the falling spectrum falls


def test_edges_ridge_predicts_a_planted_relation_but_not_noise() -> None:
    """Leave-one-group-out ridge: a linear relation shared by all groups is
    recovered for the groups left out; a target that is noise is not."""
    from edges import ridge_leave_one_group_out

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5))
    groups = np.repeat(np.arange(40), 5)
    y = x @ np.array([3.0, -2.0, 0.0, 1.0, 0.5]) - 20.0 + 0.1 * rng.normal(size=200)
    pred = ridge_leave_one_group_out(x, y, groups, lam=1.0)
    assert np.corrcoef(pred, y)[0, 1] > 0.99 and abs((pred - y).mean()) < 0.2
    noise = rng.normal(size=200)
    assert abs(np.corrcoef(ridge_leave_one_group_out(x, noise, groups, lam=1.0), noise)[0, 1]) < 0.3


def test_stereo_width_is_side_over_mid() -> None:
    """benchmarks/width.py: one signal in both channels has no side, in one
    channel only as much side as mid, in opposite phase no mid."""
    from width import width_db

    x = np.random.default_rng(2).standard_normal(20000).astype(np.float32)
    assert width_db(np.stack([x, x]), 10, 400) < -100
    assert abs(width_db(np.stack([x, np.zeros_like(x)]), 10, 400)) < 1e-3
    assert width_db(np.stack([x, -x]), 10, 400) > 100
    assert abs(width_db(np.stack([x, 0.5 * x]), 10, 400) - 20 * np.log10(0.5 / 1.5)) < 1e-3


def test_slope_cap_carries_the_mp3s_slope_upwards_and_only_lowers() -> None:
    """benchmarks/posthoc.py ``slope_cap``: an MP3 falling 12 dB an octave
    under its cutoff caps a flat restored band at that line carried on
    (plus the margin); a restoration already under the line is left alone,
    and nothing under the cutoff moves."""
    from types import SimpleNamespace

    from posthoc import slope_cap

    from mp3fix.model import band_mask, extension_gain
    from mp3fix.restore import Restorer

    cfg = Restorer(None).config
    cut, frames = 128, 20
    k = np.arange(cfg.n_bins) + 0.5
    line_db = -12.0 * np.log2(k / cut)  # 0 dB at the cutoff
    mag = 10 ** (line_db / 20)
    spec = np.repeat(np.where(k < cut, mag, 1e-6)[None, :, None], frames, axis=-1).astype(np.complex64)
    prep = SimpleNamespace(cutoff=cut, spec=spec, mask1=band_mask(cut, cfg.n_bins, cfg.mask_ramp_bins))
    gain = extension_gain(cut, cfg)
    flat = np.full((1, cfg.n_bins, frames), -gain, np.float32)  # restored at 0 dB after the calibration
    g = slope_cap(prep, flat, cfg, None, 0.0, 1.0, 6.0) * 20 / np.log(10)
    assert np.all(g <= 0) and np.all(g[: cut - cfg.mask_ramp_bins] == 0)
    top = (k > 2 * cut) & (k < 4 * cut)  # one to two octaves up: the line is at -12 to -24 dB
    np.testing.assert_allclose(g[top], line_db[top], atol=2.0)
    g6 = slope_cap(prep, flat, cfg, None, 6.0, 1.0, 6.0) * 20 / np.log(10)
    np.testing.assert_allclose(g6[top], np.minimum(line_db[top] + 6, 0), atol=2.0)
    quiet = (np.log(mag) - gain - 3.0)[None, :, None].repeat(frames, axis=-1).astype(np.float32)
    assert np.all(slope_cap(prep, quiet, cfg, None, 0.0, 1.0, 6.0) == 0)


def test_highs_picks_the_best_level_per_file_and_counts_the_cases_below_the_mp3() -> None:
    """benchmarks/highs.py: each file (track, bitrate) takes the level that
    scores best on its excerpts' mean, ties to the first; a case counts as
    below the MP3 only by more than 0.1."""
    from highs import per_file_best, summary

    def row(track: str, excerpt: int, kbps: int, fix: float, mp3: float = 3.0) -> dict:
        return {"track": track, "excerpt": excerpt, "kbps": kbps, "lsd": {"mp3fix": 20.0},
                "visqol": {"mp3fix": fix, "mp3": mp3, "band copy": 3.0}}

    def run(scores: dict) -> dict:
        return {(t, e, k): row(t, e, k, v) for (t, e, k), v in scores.items()}

    runs = {
        "0": run({("a", 0, 16): 3.5, ("a", 1, 16): 3.5, ("b", 0, 16): 2.0, ("b", 1, 16): 3.4, ("a", 0, 32): 3.0}),
        "-12": run({("a", 0, 16): 3.0, ("a", 1, 16): 3.0, ("b", 0, 16): 3.2, ("b", 1, 16): 3.3, ("a", 0, 32): 3.0}),
    }
    # b: -12's mean 3.25 beats 0's 2.7, though 0 wins one excerpt; a at 32 is a tie: the first level
    assert per_file_best(runs) == {("a", 16): "0", ("b", 16): "-12", ("a", 32): "0"}
    s = summary(list(runs["0"].values())[:4])
    assert s["below"] == 1 and s["visqol"] == pytest.approx(3.1)
    assert s["margin"] == pytest.approx(0.1) and s["se"] == pytest.approx(0.4)  # tracks +0.5 and -0.3
    assert summary([row("a", 0, 16, 2.95)])["below"] == 0  # 0.05 under the MP3: not "below"
    # files: b at 16 is 0.3 under the MP3 on its mean (one excerpt 1.0 under, one 0.4 over)
    assert (s["files_below"], s["files"]) == (1, 2)


def test_variant_levels_measures_the_spread_in_level_between_variants() -> None:
    """benchmarks/variant_levels.py: variants 6 dB apart throughout spread by
    their standard deviation in the whole-excerpt and per-frame figures; level
    swaps between frames that keep the whole the same spread per frame only;
    frames silent in every variant are left out."""
    from variant_levels import band_levels, spreads

    frames = 20
    base = np.full(frames, -30.0)
    apart = np.stack([base, base + 6.0])
    total, per_frame = spreads(apart)
    assert total == pytest.approx(3.0, abs=1e-6) and per_frame == pytest.approx(3.0, abs=1e-6)
    swing = np.where(np.arange(frames) % 2 == 0, -24.0, -36.0)
    swapped = np.stack([swing, swing[::-1]])  # louder in alternate frames, the same on the whole
    total, per_frame = spreads(swapped)
    assert total == pytest.approx(0.0, abs=1e-6) and per_frame == pytest.approx(6.0, abs=1e-6)
    silent = np.concatenate([apart, np.full((2, 5), -100.0)], axis=1)
    assert spreads(silent)[1] == pytest.approx(3.0, abs=1e-6)
    # band_levels: mean power above the cut bin of the mono mix, in dB
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, SR)).astype(np.float32)
    lv = band_levels([x, 0.5 * x], 100)
    np.testing.assert_allclose(lv[0] - lv[1], 20 * np.log10(2), atol=1e-3)


def test_variant_levels_picks_the_best_variant_per_file() -> None:
    """variant_levels.per_file: the best variant is chosen on a file's mean over
    its excerpts (not excerpt by excerpt), and a file is below the MP3 when its
    mean is more than 0.1 under the MP3's mean."""
    from variant_levels import per_file

    rows = [  # file a: variant 1 best on average though variant 0 wins one excerpt
        {"track": "a", "visqol_mp3": 3.0, "visqol": [3.5, 3.3]},
        {"track": "a", "visqol_mp3": 3.0, "visqol": [2.5, 3.3]},
        # file b: variant 0 is 0.2 under the MP3, variant 1 only 0.05
        {"track": "b", "visqol_mp3": 3.0, "visqol": [2.8, 2.95]},
    ]
    first, best, below = per_file(rows)
    assert first == pytest.approx((3.5 + 2.5 + 2.8) / 3)
    assert best == pytest.approx((3.3 + 3.3 + 2.95) / 3)
    assert below == (1, 0)


def test_benchmarks_without_a_data_set_say_what_to_run(tmp_path: Path) -> None:
    import json

    from splits import read_splits

    with pytest.raises(SystemExit, match=r"^error: no .*splits\.json: build the data set first"):
        read_splits(tmp_path / "pairs")
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "splits.json").write_text(json.dumps({"splits": {"test": ["a.ogg"]}, "summary": {}}))
    assert read_splits(tmp_path / "pairs") == {"test": ["a.ogg"]}
    # paths as `dataset --out d` wrote them, relative to where it ran: found from any other folder too
    (tmp_path / "d" / "music").mkdir(parents=True)
    (tmp_path / "d" / "music" / "b.ogg").write_bytes(b"")
    (tmp_path / "d" / "pairs").mkdir()
    (tmp_path / "d" / "pairs" / "splits.json").write_text(json.dumps({"splits": {"test": ["d/music/b.ogg"]}}))
    assert read_splits(tmp_path / "d" / "pairs")["test"] == [str(tmp_path.resolve() / "d" / "music" / "b.ogg")]


def test_lsd_shares_add_up_and_each_range_counts_only_its_own_bins() -> None:
    """benchmarks/lsd_bands.py: the shares of the ranges sum to the mean squared
    dB difference over all bins, and a difference above 19 kHz shows in that
    range's share only."""
    from lsd_bands import lsd_shares

    from mp3fix.spectral import istft, stft

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, SR)).astype(np.float32) * 0.1
    assert not lsd_shares(ref, ref, [17000.0, 19000.0]).any()
    spec = stft(ref, 2048, 512)
    f = np.arange(spec.shape[-2]) * SR / 2048
    spec[..., f >= 19500.0, :] *= 0.1  # 20 dB down above 19.5 kHz
    deg = istft(spec, 2048, 512, ref.shape[-1])
    shares = lsd_shares(ref, deg, [17000.0, 19000.0])
    assert shares[0] < 1e-3 * shares[2] and shares[1] < 1e-2 * shares[2]
    a, b = (np.abs(stft(x, 2048, 512)) ** 2 for x in (ref, deg))
    d2 = (10 * np.log10(a + 1e-10) - 10 * np.log10(b + 1e-10)) ** 2
    assert shares.sum() == pytest.approx(d2.mean(), rel=1e-5)
    # the bins above 19.5 kHz are 20 dB down: their share is 400 dB^2 times their fraction of the bins
    assert shares[2] == pytest.approx(400.0 * (f >= 19500.0).mean(), rel=0.1)


def test_intact_measures_only_the_band_under_the_cutoff(pair) -> None:
    """benchmarks/intact.py: the runtime restores from the MP3's brick wall; a
    restoration that adds highs and leaves the band under the cutoff alone
    scores the MP3's LSD there and moves nothing; one that changes that band
    is caught by both; the ViSQOL hybrid takes the restoration's band under
    the cutoff and the MP3's above."""
    from intact import EDGE_HZ, lsd_under, moved_db, restore_and_cutoff, under_only

    from mp3fix.restore import Restorer
    from mp3fix.spectral import stft

    orig, mp3 = pair
    restorer = Restorer(None, device="cpu", threads=1)
    y, hz = restore_and_cutoff(restorer, mp3)
    assert CUT_HZ <= hz < CUT_HZ + 300.0  # the first bin above the cliff
    assert restorer._prepare.__name__ == "_prepare"  # put back
    assert moved_db(mp3, y, hz - EDGE_HZ - 64 * SR / 1024) < 0.05  # the shipped model leaves that band alone
    assert restore_and_cutoff(restorer, orig)[1] == SR / 2  # full band: nothing restored
    assert hz - EDGE_HZ < CUT_HZ - 200.0  # what intact.py counts as the kept band stays under it
    # the highs put back exactly, the band under the cutoff as the MP3 has it: nothing there differs,
    # although the whole spectra do (the MP3 has no highs)
    assert lsd_under(orig, orig, hz - 300.0) == pytest.approx(lsd_under(orig, mp3, hz - 300.0), abs=0.05)
    assert lsd_under(orig, mp3, CUT_HZ + 3000.0) > 5.0
    assert moved_db(mp3, orig, hz - 300.0) < 0.1
    louder = brickwall(mp3, 2000.0, SR) * 1.0 + (mp3 - brickwall(mp3, 2000.0, SR)) * 2.0  # +6 dB at 2-6 kHz
    assert moved_db(mp3, louder, hz - 300.0) == pytest.approx(6.0, abs=0.5)
    assert lsd_under(orig, louder, hz - 300.0) > lsd_under(orig, mp3, hz - 300.0) + 2.0
    hybrid = under_only(mp3, louder + (orig - mp3), hz)
    spec, ref = np.abs(stft(hybrid, 2048, 512)), np.abs(stft(louder, 2048, 512))
    f = np.arange(spec.shape[-2]) * SR / 2048
    inner = slice(4, -4)  # away from the ends
    kept = (f > 2500) & (f < hz - 600)  # a few bins from the seam, where the re-analysis blurs it
    assert np.allclose(spec[:, kept, inner], ref[:, kept, inner], rtol=0.02, atol=1e-4)
    above = spec[:, f > hz + 300, inner] ** 2
    assert above.sum() < 1e-4 * (ref[:, f < hz - 300, inner] ** 2).sum()  # the MP3's (empty) band above, not the highs


def test_posthoc_gate_cap_and_lowpass_act_only_above_the_cutoff(pair) -> None:
    """benchmarks/posthoc.py: ``gate`` fades the restored band out where its
    ViSQOL band level is under the threshold (all of it under a threshold far
    above, none under one far below) and leaves the band under the cutoff;
    ``cap`` holds the restored band at band copy's level plus its margin and
    leaves the band under the cutoff; ``lowpassed`` removes what lies above
    its frequency and keeps what lies below."""
    from posthoc import band_copy_cap, gate, lowpassed

    orig, dec = pair
    y = orig  # a "restoration" with the original's highs
    a = stft_mag(y)[..., 4:-4]
    low, top = slice(0, CUT_BIN - 8), slice(CUT_BIN + 12, 480)
    for out in (gate(y, dec, 100.0), gate(y, dec, -200.0), band_copy_cap(y, dec, 0.0)):
        m = stft_mag(out)[..., 4:-4]
        assert np.abs(m[..., low, :] - a[..., low, :]).mean() < 0.01 * a[..., low, :].mean()
    assert stft_mag(gate(y, dec, 100.0))[..., top, 4:-4].mean() < 1e-3 * a[..., top, :].mean()
    np.testing.assert_allclose(stft_mag(gate(y, dec, -200.0))[..., 4:-4], a, rtol=1e-3, atol=1e-4 * a.max())
    capped = stft_mag(band_copy_cap(y, dec, 0.0))[..., 4:-4]
    bc = stft_mag(band_copy(dec))[..., 4:-4]
    # the highs are as loud as the band under the cutoff; band copy's fall 6 dB per 2 kHz
    far = slice(int(14000 / (SR / 1024)), int(16000 / (SR / 1024)))
    level = 10 * np.log10((capped[..., far, :] ** 2).mean() / (bc[..., far, :] ** 2).mean())
    assert abs(level) < 1.0 and (a[..., far, :] ** 2).mean() > 10 * (bc[..., far, :] ** 2).mean()
    # 60 dB above band copy holds back next to nothing (only the deep notches between band copy's blocks)
    loose = stft_mag(band_copy_cap(y, dec, 60.0))[..., 4:-4]
    assert abs(10 * np.log10((loose[..., top, :] ** 2).mean() / (a[..., top, :] ** 2).mean())) < 0.5
    assert np.isclose(loose, a, rtol=1e-3, atol=1e-4 * a.max()).mean() > 0.9
    lp = stft_mag(lowpassed(orig, 4000.0))[..., 4:-4]
    under, over = slice(0, int(3500 / (SR / 1024))), slice(int(4500 / (SR / 1024)), 500)
    assert np.abs(lp[..., under, :] - a[..., under, :]).mean() < 0.01 * a[..., under, :].mean()
    assert lp[..., over, :].mean() < 1e-3 * a[..., over, :].mean()


def test_twin_at_encodes_stereo_or_the_mid_in_mono_as_lame_picks() -> None:
    """benchmarks/quality.py: ``twin_at`` gives a stereo MP3 at the stereo rate
    lame picks, or with ``mono`` a mono MP3 of the mid at the mono rate,
    scored against that mid."""
    from quality import twin_at

    ref = enveloped_noise(SR, SR, channels=2, seed=5)
    dec, orig, s = twin_at(ref, 32)
    assert (s.channels, s.rate) == (2, 16000) and dec.shape[0] == 2
    np.testing.assert_array_equal(orig, ref[:, : orig.shape[1]])
    dec, orig, s = twin_at(ref, 32, mono=True)
    assert (s.channels, s.rate) == (1, 22050) and dec.shape[0] == 1
    np.testing.assert_allclose(orig[0], ref.mean(axis=0)[: orig.shape[1]], rtol=0, atol=1e-6)
    assert abs(dec.shape[1] - SR) < 0.01 * SR  # the decoded MP3 lines up with the excerpt


def test_twins_shelve_only_above_the_edge_and_compare_only_the_kept_band(pair) -> None:
    """benchmarks/twins.py: a twin is its original with one band changed (the
    band under the edge untouched); the MP3s' distance counts only the band the
    encoder keeps; an excerpt is served by a level only if no twin is more than
    0.1 below its MP3 there."""
    from twins import kept_band_lsd, one_level_serves, shelved, twin_originals

    from mp3fix.spectral import stft

    orig, mp3 = pair
    f = np.arange(1025) * SR / 2048

    def band_db(x: np.ndarray, lo: float, hi: float) -> float:
        p = np.abs(stft(x, 2048, 512)[:, (f > lo) & (f < hi), 4:-4]) ** 2
        return float(10 * np.log10(p.mean()))

    dark = shelved(orig, 8000.0, -15.0)
    assert band_db(dark, 9000, 20000) == pytest.approx(band_db(orig, 9000, 20000) - 15.0, abs=0.3)
    assert band_db(dark, 1000, 7500) == pytest.approx(band_db(orig, 1000, 7500), abs=0.01)
    twins = twin_originals(orig, 5500.0, 16000, -15.0)
    assert band_db(twins["ends 10k"], 11000, 20000) < band_db(orig, 11000, 20000) - 100.0
    # the dark twin's shelf sits at the resampler's Nyquist (8 kHz) where that is above the band + 1 kHz
    assert band_db(twins["dark"], 2000, 7500) == pytest.approx(band_db(orig, 2000, 7500), abs=0.01)
    assert band_db(twins["dark"], 8500, 20000) == pytest.approx(band_db(orig, 8500, 20000) - 15.0, abs=0.3)
    # the highs differ by everything, the band under 5.5 kHz not at all
    assert kept_band_lsd(orig, mp3, CUT_HZ - 500.0) < 0.1
    assert kept_band_lsd(orig, mp3, CUT_HZ + 3000.0) > 5.0
    assert kept_band_lsd(orig, orig * 2.0, 5000.0) == pytest.approx(6.02, abs=0.01)
    row = {"gain": {"full": {"0": 0.4, "-12": 0.1}, "ends 10k": {"0": -0.5, "-12": -0.05},
                    "dark": {"0": -0.11, "-12": 0.2}}}
    assert one_level_serves(row, ["0", "-12"]) == ["-12"]
    row["gain"]["dark"]["-12"] = -0.2
    assert one_level_serves(row, ["0", "-12"]) == []
