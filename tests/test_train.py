"""Tests for the training code (torch): networks, losses, data pairs, export parity,
a short training run that resumes, and the shipped model against its training state."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the train extra (torch)")

from mp3fix.model import ModelConfig, band_mask, shipped_model_path  # noqa: E402
from mp3fix.phase import copy_phase_sources  # noqa: E402
from mp3fix.train import dataset, export, losses, train  # noqa: E402
from mp3fix.train.nets import (  # noqa: E402
    BandCritic,
    BandGenerator,
    Critic,
    Generator,
    band_matrices,
    build_critic,
    build_generator,
)
from tests.helpers import enveloped_noise  # noqa: E402

CFG = ModelConfig()
F = CFG.n_bins
ONNX_TOLERANCE = 1e-4  # max abs difference in log-magnitude between torch and onnxruntime


def _inputs(n: int = 2, t: int = 64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, F, t, generator=g) * 2 - 6
    m = torch.from_numpy(np.broadcast_to(band_mask(120, F, 8)[None, None, :, None], (n, 1, F, t)).copy())
    z = torch.randn(n, CFG.z_channels, F, t, generator=g)
    cp = x[:, :, torch.from_numpy(copy_phase_sources(120, F, 64)), :]
    return x, m, z, cp


def test_untrained_generator_is_band_replication_and_keeps_intact_band() -> None:
    G = Generator(base=8, depth=2).eval()
    x, m, z, cp = _inputs()
    with torch.no_grad():
        out = G(x, m, z, cp)
    below = m[0, 0, :, 0] == 0
    torch.testing.assert_close(out[:, :, below], x[:, :, below])  # intact band: bit for bit
    full = m[0, 0, :, 0] == 1
    torch.testing.assert_close(out[:, :, full], cp[:, :, full])  # zero-initialised head


def test_trained_generator_still_keeps_intact_band_and_uses_z() -> None:
    torch.manual_seed(0)
    G = Generator(base=8, depth=2)
    for p in G.parameters():  # stand-in for training: every weight non-zero
        torch.nn.init.normal_(p, std=0.05)
    G.eval()
    x, m, z, cp = _inputs()
    with torch.no_grad():
        a = G(x, m, z, cp)
        b = G(x, m, torch.randn_like(z), cp)
    below = m[0, 0, :, 0] == 0
    torch.testing.assert_close(a[:, :, below], b[:, :, below])
    assert (a - b).abs()[:, :, ~below].mean() > 1e-3


def test_generator_time_axis_stays_long_and_local() -> None:
    """Time is halved at only ``time_levels`` levels, so the model accepts any
    multiple of 2 ** (time_levels + 1) frames and its reach in time is bounded:
    a 9-second chunk is, frame by frame, the same problem as a training crop."""
    torch.manual_seed(0)
    G = Generator(base=4, depth=4, time_levels=2)
    for p in G.parameters():
        torch.nn.init.normal_(p, std=0.05)
    G.eval()
    assert G.time_multiple == 8
    x, m, z, cp = _inputs(n=1, t=400)
    x2 = x.clone()
    x2[..., :8] += 3.0  # change the first 8 frames only
    cp2 = x2[:, :, torch.from_numpy(copy_phase_sources(120, F, 64)), :]
    with torch.no_grad():
        a = G(x, m, z, cp)
        b = G(x2, m, z, cp2)
    assert (a - b)[..., :8].abs().max() > 1e-3  # the change is seen where it happens
    torch.testing.assert_close(a[..., 300:], b[..., 300:])  # and not 300 frames (3.5 s) later
    # the old layout (time halved at every level) sees across the whole crop
    deep = Generator(base=4, depth=4, time_levels=4)
    assert deep.time_multiple == 32


def test_critic_returns_features_and_patch_logits() -> None:
    D = Critic(base=8)
    x, m, _, _ = _inputs()
    feats = D(x, x, m)
    assert len(feats) == 5 and feats[-1].shape[1] == 1
    assert all(f.shape[0] == 2 for f in feats)


def test_band_critic_judges_band_levels() -> None:
    D = BandCritic(n_bins=F, sample_rate=CFG.sample_rate, n_fft=CFG.n_fft, bands=32, base=8).eval()
    x, m, _, _ = _inputs()
    feats = D(x, x, m)
    assert feats[0].shape[2] == 16 and feats[-1].shape[1] == 1  # 32 band rows, halved by the first layer
    # the same as the bins critic run on the band levels (log RMS) and the mask at the band centres
    levels = 0.5 * torch.log(torch.matmul(D.analysis, torch.exp(2 * x)) + 1e-10)
    plain = Critic.forward(D, levels, levels, torch.index_select(m, 2, D.centres))
    assert torch.allclose(feats[-1], plain[-1])
    # one band louder in one frame changes what it says there
    y = x.clone()
    y[:, :, 300:330, 10] += 2.0
    assert not torch.allclose(D(y, x, m)[-1], feats[-1])
    # the analysis is rebuilt, not saved: a state dict holds only the weights
    assert not any(k in ("analysis", "centres") for k in D.state_dict())


def test_losses() -> None:
    x, m, _, _ = _inputs()
    assert float(losses.pooled_log_l1(x, x, m, CFG.log_floor)) == 0.0
    assert float(losses.pooled_log_l1(x + 1.0, x, m, CFG.log_floor)) > 0.5
    # only the masked band counts
    y = x.clone()
    y[:, :, :100] += 5.0
    assert float(losses.pooled_log_l1(y, x, m, CFG.log_floor)) == 0.0
    # LSD of a constant 1-nat error is 20/ln(10) dB
    assert abs(float(losses.lsd_db(x + 1.0, x, m)) - 20 / np.log(10)) < 1e-3
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert abs(float(losses.critic_hinge(real, fake)) - (0.25 + 0.75)) < 1e-6


def test_erb_filterbank_rows_are_normalised_and_ordered() -> None:
    fb = losses.erb_filterbank(CFG.n_bins, CFG.sample_rate, CFG.n_fft)
    assert fb.shape == (losses.NSIM_BANDS, CFG.n_bins)
    assert torch.allclose(fb.sum(dim=1), torch.ones(losses.NSIM_BANDS))
    centre = (fb * torch.arange(CFG.n_bins)).sum(dim=1)
    assert bool((centre[1:] > centre[:-1]).all())
    assert int((fb[-1] > 0).sum()) > 20 * int((fb[5] > 0).sum())  # wide bands at the top, narrow at the bottom


def test_nsim_loss_ignores_gain_and_sees_temporal_shape() -> None:
    fb = losses.erb_filterbank(CFG.n_bins, CFG.sample_rate, CFG.n_fft)
    x, m, _, _ = _inputs()
    same = float(losses.nsim_loss(x, x, m, fb))
    assert same < 1e-3
    # a global gain (a constant in log magnitude) changes nothing: levels are relative
    assert abs(float(losses.nsim_loss(x + 2.0, x + 2.0, m, fb)) - same) < 1e-4
    g = torch.Generator().manual_seed(0)
    bumpy = x + m * 1.5 * torch.randn(x.shape[:-2] + (1, x.shape[-1]), generator=g)  # band-wide level jumps over time
    assert float(losses.nsim_loss(bumpy, x, m, fb)) > same + 0.01
    flat = x.mean(dim=-1, keepdim=True).expand_as(x)  # right average level, no temporal shape
    structured = (1 - m) * x + m * flat
    assert float(losses.nsim_loss(structured, x, m, fb)) > same + 0.01
    assert float(losses.nsim_loss(x[..., :8], x[..., :8], m[..., :8], fb)) == 0.0  # too short: no term


def test_envelope_loss_asks_fast_band_levels_to_move_with_the_original() -> None:
    fb = losses.erb_filterbank(CFG.n_bins, CFG.sample_rate, CFG.n_fft)
    g = torch.Generator().manual_seed(1)
    x, m, _, _ = _inputs(t=128)
    x = x[..., :1].expand_as(x)  # a spectrum that stands still...
    # ...and an original whose restored band moves: a level pattern over time, the same in every band
    moves = 0.5 * torch.randn(x.shape[:-2] + (1, x.shape[-1]), generator=g)
    y = x + m * moves
    assert float(losses.envelope_loss(y, y, m, fb)) < 1e-3
    # the same movements at a third of the size, plus a slow drift and a gain: still right
    drift = torch.linspace(0, 1, x.shape[-1])
    assert float(losses.envelope_loss(x + m * (moves / 3 + drift + 0.5), y, m, fb)) < 0.05
    # no movement, or other movements: wrong
    assert float(losses.envelope_loss(x, y, m, fb)) > 0.5
    other = 0.5 * torch.randn(moves.shape, generator=g)
    assert float(losses.envelope_loss(x + m * other, y, m, fb)) > 0.5
    # only the restored band counts (but for ERB bands that straddle the cutoff ramp)
    assert float(losses.envelope_loss(y + (1 - m) * other, y, m, fb)) < 0.05
    # a gradient reaches the output
    out = (x + m * other).requires_grad_(True)
    losses.envelope_loss(out, y, m, fb).backward()
    assert float(out.grad.abs().sum()) > 0


def test_widen_head_keeps_the_function_and_adds_channels() -> None:
    torch.manual_seed(0)
    G = Generator(base=4, depth=2)
    for p in G.parameters():
        torch.nn.init.normal_(p, std=0.05)
    G.eval()
    x, m, z, cp = _inputs(n=1, t=32)
    before = G(x, m, z, cp)
    n_before = sum(p.numel() for p in G.parameters())
    G.widen_head(12)
    assert G.head_channels == 12 and sum(p.numel() for p in G.parameters()) > n_before
    assert torch.allclose(G(x, m, z, cp), before, atol=1e-6)
    # the new channels can learn: they are not dead
    assert float(G.head1.weight.detach()[4:].abs().sum()) > 0


def test_training_run_widens_the_head_and_exports_it(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    args = ["--data", str(data), "--run", str(run), "--batch", "2", "--crop", "32", "--base", "4", "--depth", "2",
            "--warmup", "1", "--val-every", "4", "--ckpt-every", "2", "--threads", "1"]
    train.main(args + ["--steps", "2"])
    assert torch.load(run / "last.pt", weights_only=False)["arch"]["head"] == 4
    train.main(args + ["--steps", "4", "--head", "8", "--envelope", "1"])  # resumed, widened
    st = torch.load(run / "last.pt", weights_only=False)
    assert st["step"] == 4 and st["arch"]["head"] == 8
    assert st["G"]["head1.weight"].shape[0] == 8 and st["G_ema"]["head1.weight"].shape[0] == 8
    train.main(args + ["--steps", "6"])  # and stays wide without the flag
    _, G_avg, _, step = export.load_run(run)
    assert step == 6 and G_avg.head_channels == 8


def test_find_lag() -> None:
    x = enveloped_noise(20000, 44100, seed=1)
    late = np.concatenate([np.zeros(37, np.float32), x])[: len(x)]
    assert dataset.find_lag(late, x) == 37
    assert dataset.find_lag(x, x) == 0


def test_make_pairs_on_a_synthetic_track(tmp_path: Path) -> None:
    import soundfile as sf

    track = tmp_path / "track.wav"
    sf.write(track, enveloped_noise(44100 * 8, 44100, channels=2, seed=2).T * 0.3, 44100)
    res = dataset.make_pairs((str(track), 0, 2, CFG.to_dict(), 6.0, 3))
    assert res["lags"] and all(lag == 0 for lag in res["lags"])  # MP3 twins line up with the original
    assert len(res["x"]) > 0 and len(res["x"]) == len(res["y"]) == len(res["cutoff"])
    assert res["x"][0].shape == (F, CFG.train_crop_frames) and res["x"][0].dtype == np.float16
    assert all(c < F for c in res["cutoff"])  # every setting has a detectable low-pass


def test_make_pairs_with_mid_side_on_a_dual_mono_track_keeps_the_mid_and_drops_the_silent_side(
        tmp_path: Path) -> None:
    import soundfile as sf

    track = tmp_path / "dual.wav"
    sf.write(track, np.repeat(enveloped_noise(44100 * 8, 44100, channels=1, seed=2), 2, axis=0).T * 0.3, 44100)
    lr = dataset.make_pairs((str(track), 0, 3, CFG.to_dict(), 6.0, 3))
    ms = dataset.make_pairs((str(track), 0, 3, CFG.to_dict(), 6.0, 3, True))
    stereo = [dataset.CONFIGS[k].channels == 2 for k in lr["config"]]
    assert any(stereo)  # the seed picks at least one stereo setting
    # left and right are equal, so the mid is either of them and the side is silent (no crop)
    assert len(ms["x"]) == len(lr["x"]) - sum(stereo) // 2
    lr_crops = {x.tobytes() for x in lr["x"]}
    assert all(x.tobytes() in lr_crops for x in ms["x"])


def test_make_pairs_on_a_mono_track_gives_one_channel_of_crops_per_setting(tmp_path: Path) -> None:
    import soundfile as sf

    track = tmp_path / "mono.wav"
    sf.write(track, enveloped_noise(44100 * 8, 44100, channels=1, seed=2)[0] * 0.3, 44100)
    res = dataset.make_pairs((str(track), 0, 3, CFG.to_dict(), 6.0, 3))
    assert any(dataset.CONFIGS[k].channels == 2 for k in res["config"])  # the seed picks a stereo setting
    # a stereo MP3 of a mono recording has two equal channels: their crops would be the same crop twice
    for k in set(res["config"]):
        assert res["config"].count(k) <= 3
    assert len({x.tobytes() for x in res["x"]}) == len(res["x"])


def test_split_is_by_whole_track_and_reproducible() -> None:
    tracks = [Path(f"t{i}.ogg") for i in range(40)]
    a = dataset.split_tracks(tracks, seed=3)
    assert a == dataset.split_tracks(tracks, seed=3)
    sets = [set(v) for v in a.values()]
    assert sum(len(s) for s in sets) == 40 and len(set.union(*sets)) == 40  # disjoint, complete


def test_collect_music_takes_the_music_folder_and_zipped_music_only(tmp_path: Path) -> None:
    import zipfile

    tree = tmp_path / "data" / "music" / "unpacked"  # the tree's own path names the folder too
    (tree / "usr/games/x/data/music").mkdir(parents=True)
    (tree / "usr/games/x/data/sound").mkdir(parents=True)
    (tree / "usr/games/x/data/music/theme.ogg").write_bytes(b"OggS theme")
    (tree / "usr/games/x/data/music/notes.txt").write_text("not audio")
    (tree / "usr/games/x/data/sound/crash.ogg").write_bytes(b"OggS crash")
    with zipfile.ZipFile(tree / "usr/games/x/public.zip", "w") as z:
        z.writestr("audio/music/anthem.ogg", b"OggS anthem")
        z.writestr("audio/sfx/boom.ogg", b"OggS boom")
    dst = tmp_path / "out"
    assert dataset.collect_music(tree, "data/music/", dst) == 1
    assert sorted(p.name for p in dst.iterdir()) == ["theme.ogg"]
    assert dataset.collect_music(tree, "audio/music/", dst) == 1
    assert sorted(p.name for p in dst.iterdir()) == ["anthem.ogg", "theme.ogg"]
    assert (dst / "anthem.ogg").read_bytes() == b"OggS anthem"


def _fake_pairs(args: tuple) -> dict:
    path = args[0]
    x = np.zeros((2, F, 8), np.float16)
    x[:, 100:] = np.log(CFG.log_floor)  # an MP3 with nothing above bin 100
    return {"x": list(x), "y": list(x), "cutoff": [100, 100], "config": [0, 0], "lags": [0], "path": path,
            "seconds": 60.0}


def _fake_pairs_of_extra_tracks_only(args: tuple) -> dict:
    if not str(args[0]).startswith("x"):  # the train and val pairs are already there
        raise AssertionError(f"rebuilt {args[0]}")
    return _fake_pairs(args)


def test_build_adds_extra_tracks_to_training_only_and_keeps_built_splits(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(dataset, "make_pairs", _fake_pairs)
    monkeypatch.setattr(dataset, "_ffmpeg_duration", lambda p: 60.0)
    tracks = [Path(f"t{i}.ogg") for i in range(20)]
    out = tmp_path / "pairs"
    dataset.build(out, tracks, 3, 1, 60.0, 1, 1)
    first = json.loads((out / "splits.json").read_text())
    assert "train_extra" not in first["splits"] and not (out / "train-extra.npz").exists()
    extra = [Path(f"x{i}.ogg") for i in range(5)]
    monkeypatch.setattr(dataset, "make_pairs", _fake_pairs_of_extra_tracks_only)
    summary = dataset.build(out, tracks, 3, 1, 60.0, 1, 1, extra=extra, skip_existing=True)
    second = json.loads((out / "splits.json").read_text())
    for name in ("train", "val", "test"):  # the held-out tracks stay the same, and no extra track is in them
        assert second["splits"][name] == first["splits"][name]
    assert second["splits"]["train_extra"] == [str(p) for p in extra]
    assert summary["pairs"]["train_extra"] == 10 and np.load(out / "train-extra.npz")["x"].shape == (10, F, 8)
    assert summary["pairs"]["train"] == first["summary"]["pairs"]["train"]
    assert summary["misaligned_by_split"] == {"train": 0, "val": 0, "train_extra": 0} and summary["misaligned"] == 0
    pairs = train.Pairs([out / "train.npz", out / "train-extra.npz"], CFG)
    assert len(pairs) == summary["pairs"]["train"] + 10


def _tiny_data(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for name in ("train", "val"):
        y = (rng.standard_normal((8, F, 128)) - 6).astype(np.float16)
        x = y.copy()
        x[:, 150:] = np.log(CFG.log_floor)  # an MP3 with nothing above bin 150
        np.savez(folder / f"{name}.npz", x=x, y=y, cutoff=np.full(8, 150, np.int16), config=np.zeros(8, np.int16))
    return folder


def test_short_training_run_logs_and_resumes(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    args = ["--data", str(data), "--run", str(run), "--batch", "2", "--crop", "32", "--base", "4", "--depth", "2",
            "--warmup", "2", "--val-every", "4", "--ckpt-every", "2", "--threads", "1"]
    train.main(args + ["--steps", "4"])
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and rows[-1].startswith("4,")
    assert float(rows[-1].split(",")[5]) > 0  # the critic trained after the warm-up
    train.main(args + ["--steps", "6"])  # resumes from last.pt instead of starting over
    assert (run / "log.csv").read_text().splitlines()[-1].startswith("6,")
    st = torch.load(run / "last.pt", weights_only=False)
    assert st["step"] == 6
    # the averaged generator moved towards the raw one, but is not it
    name = "head1.weight"
    assert not torch.equal(st["G_ema"][name], st["G"][name])
    G_raw, G_avg, _, step = export.load_run(run)
    assert step == 6 and torch.equal(G_avg.state_dict()[name], st["G_ema"][name])
    train.main(args + ["--steps", "8", "--lr", "5e-5"])  # a resumed run takes the new learning rate
    st = torch.load(run / "last.pt", weights_only=False)
    assert [g["lr"] for g in st["opt_g"]["param_groups"]] == [5e-5]
    assert [g["lr"] for g in st["opt_d"]["param_groups"]] == [5e-5]


def test_visqol_band_weights_sit_on_the_top_octaves() -> None:
    w = losses.visqol_band_weights(CFG.sample_rate)
    f = losses.erb_centres_hz(CFG.sample_rate)
    assert w.shape == (losses.NSIM_BANDS,) and bool((w >= 0).all())
    assert abs(float(w.mean()) - 1.0) < 1e-5
    assert abs(float(f[0]) - 50.0) < 1e-6 and abs(float(f[-1]) - CFG.sample_rate / 2) < 1e-3
    mid, top = (f > 3700) & (f < 6700), (f > 9000) & (f < 17000)
    assert float(w[mid].max()) < 0.1 * float(w[top].min())  # ViSQOL hardly hears 3.7-6.7 kHz


def test_nsim_loss_with_visqol_weights_counts_errors_by_band() -> None:
    fb = losses.erb_filterbank(CFG.n_bins, CFG.sample_rate, CFG.n_fft)
    w = losses.visqol_band_weights(CFG.sample_rate)
    x, m, _, _ = _inputs()  # restored band from bin 120 (5.2 kHz) up
    hz = torch.arange(F, dtype=torch.float32) * CFG.sample_rate / CFG.n_fft
    g = torch.Generator().manual_seed(1)
    jumps = 1.5 * torch.randn(x.shape[:-2] + (1, x.shape[-1]), generator=g)
    low = x + m * ((hz < 6500).float()[:, None] * jumps)  # level jumps only at 5.2-6.5 kHz
    high = x + m * (((hz > 10000) & (hz < 16000)).float()[:, None] * jumps)  # only at 10-16 kHz
    for name, y in (("low", low), ("high", high)):
        assert float(losses.nsim_loss(y, x, m, fb)) > 0.005, name
    assert float(losses.nsim_loss(low, x, m, fb, w)) < 0.3 * float(losses.nsim_loss(low, x, m, fb))
    assert float(losses.nsim_loss(high, x, m, fb, w)) > float(losses.nsim_loss(high, x, m, fb))
    assert float(losses.nsim_loss(x, x, m, fb, w)) < 1e-3


def test_training_with_the_nsim_term_logs_it(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    train.main(["--data", str(data), "--run", str(run), "--batch", "2", "--crop", "32", "--base", "4", "--depth",
                "2", "--warmup", "2", "--val-every", "4", "--ckpt-every", "2", "--threads", "1", "--steps", "2",
                "--nsim", "1", "--nsim-weights", "visqol"])
    lines = (run / "log.csv").read_text().splitlines()
    header, last = lines[0], lines[-1]
    i = header.split(",").index("nsim")
    assert float(last.split(",")[i]) > 0


def test_ema_zero_exports_the_raw_generator(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    train.main(["--data", str(data), "--run", str(run), "--batch", "2", "--crop", "32", "--base", "4", "--depth",
                "2", "--warmup", "2", "--val-every", "4", "--ckpt-every", "2", "--threads", "1", "--steps", "3",
                "--ema", "0"])
    st = torch.load(run / "last.pt", weights_only=False)
    for k, v in st["G"].items():
        assert torch.equal(v, st["G_ema"][k])


def test_export_matches_torch_within_tolerance(tmp_path: Path) -> None:
    torch.manual_seed(0)
    G = Generator(base=4, depth=2)
    for p in G.parameters():
        torch.nn.init.normal_(p, std=0.05)
    G.eval()
    cfg = ModelConfig(time_multiple=G.time_multiple)
    path = tmp_path / "g.onnx"
    export.export_onnx(G, path, cfg)
    assert export.parity(G, path, cfg, frames=40) < ONNX_TOLERANCE  # frames != export size: dynamic axes work


def test_export_update_rewrites_only_the_sidecars_settings(tmp_path: Path, monkeypatch) -> None:
    import shutil

    from mp3fix.errors import ModelError
    from mp3fix.model import load_config
    from tests.helpers import FILL_MODEL

    onnx = tmp_path / "fill.onnx"
    shutil.copy(FILL_MODEL, onnx)
    shutil.copy(FILL_MODEL.with_name("fill.onnx.json"), tmp_path / "fill.onnx.json")
    before = json.loads((tmp_path / "fill.onnx.json").read_text())
    monkeypatch.setattr(sys, "argv", ["export", "--update", str(onnx), "--hole-fill", "96:30:9500:12500"])
    export.main()
    after = json.loads((tmp_path / "fill.onnx.json").read_text())
    assert (after["hole_fill_bins"], after["hole_fill_db"], after["hole_fill_hz"]) == (96, 30.0, [9500.0, 12500.0])
    assert all(after[k] == v for k, v in before.items() if not k.startswith("hole_fill"))
    assert load_config(onnx).hole_fill_bins == 96  # the checksum still holds
    monkeypatch.setattr(sys, "argv", ["export", "--update", str(onnx), "--extension-shelf-db", "18750:0,19250:-24"])
    export.main()
    assert load_config(onnx).extension_shelf_db == [[18750.0, 0.0], [19250.0, -24.0]]
    assert load_config(onnx).extension_shelf_from_hz == 0.0
    monkeypatch.setattr(sys, "argv", ["export", "--update", str(onnx), "--extension-shelf-from", "13000"])
    export.main()
    assert load_config(onnx).extension_shelf_from_hz == 13000.0
    assert load_config(onnx).extension_shelf_db == [[18750.0, 0.0], [19250.0, -24.0]]
    assert load_config(onnx).hole_fill_bins == 96  # what was not given stays
    monkeypatch.setattr(sys, "argv", ["export", "--update", str(onnx), "--extension-shelf-db", "19000"])
    with pytest.raises(SystemExit, match="--extension-shelf-db: expected HZ:DB"):
        export.main()
    monkeypatch.setattr(sys, "argv", ["export", "--update", str(onnx), "--hole-fill", "96:30"])
    with pytest.raises(SystemExit, match="BINS:DB:LO_HZ:HI_HZ"):
        export.main()
    onnx.write_bytes(onnx.read_bytes() + b"x")  # not the model the sidecar describes: refused
    monkeypatch.setattr(sys, "argv", ["export", "--update", str(onnx), "--status", "x"])
    with pytest.raises(ModelError, match="checksum"):
        export.main()


def test_shipped_model_matches_its_training_state() -> None:
    import onnxruntime as ort

    onnx_path = shipped_model_path()
    state = Path(__file__).resolve().parent.parent / "models" / "train-state"
    if not onnx_path.exists() or not (state / "generator.pt").exists():
        pytest.skip("no shipped model and training state in this checkout")
    info = json.loads((state / "state.json").read_text())
    sidecar = json.loads(onnx_path.with_name(onnx_path.name + ".json").read_text())
    assert sidecar["training"]["steps"] == info["step"]
    G = build_generator(info["arch"])  # a U-Net or a band generator, as trained
    # the ONNX model is the averaged generator where the state has one
    weights = state / "generator-ema.pt" if (state / "generator-ema.pt").exists() else state / "generator.pt"
    G.load_state_dict({k: v.float() for k, v in torch.load(weights).items()})
    G.eval()
    x, m, z, cp = _inputs(n=1, t=64, seed=4)
    z = z[:, :, : sidecar.get("z_bins", F)].contiguous()  # the rows of z the runtime draws
    with torch.no_grad():
        ref = G(x, m, z, cp).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"logmag": x.numpy(), "mask": m.numpy(), "z": z.numpy(), "copied": cp.numpy()})[0]
    # the ONNX file holds fp32 weights, the state fp16 copies of them
    assert np.abs(out - ref).max() < 0.05


def test_band_matrices_average_and_interpolate() -> None:
    analysis, synthesis = band_matrices(F, CFG.sample_rate, CFG.n_fft, 64)
    assert analysis.shape == (64, F) and synthesis.shape == (F, 64)
    torch.testing.assert_close(analysis.sum(dim=1), torch.ones(64))  # a band's mean power
    covered = synthesis.sum(dim=1)
    torch.testing.assert_close(covered[2:], torch.ones(F - 2))  # every bin from 86 Hz up gets a gain
    # bands are ordered and narrow at the bottom, wide at the top (ERB spacing)
    centres = analysis.argmax(dim=1)
    assert bool((centres[1:] >= centres[:-1]).all())
    width = (analysis > 0).sum(dim=1)
    assert int(width[-2]) > 4 * int(width[20])
    # a gain that is the same in every band is the same in every bin
    torch.testing.assert_close(synthesis[2:] @ torch.full((64,), 0.7), torch.full((F - 2,), 0.7))


def test_band_generator_keeps_the_contract() -> None:
    """Same inputs and output as the U-Net: band replication untrained, the
    intact band bit for bit, z used only above the cutoff once trained."""
    G = BandGenerator(bands=32, base=4, depth=2).eval()
    x, m, z, cp = _inputs(t=32)
    with torch.no_grad():
        out = G(x, m, z, cp)
    below = m[0, 0, :, 0] == 0
    full = m[0, 0, :, 0] == 1
    torch.testing.assert_close(out[:, :, below], x[:, :, below])
    torch.testing.assert_close(out[:, :, full], cp[:, :, full])
    torch.manual_seed(0)
    for p in G.parameters():
        torch.nn.init.normal_(p, std=0.05)
    with torch.no_grad():
        a, b = G(x, m, z, cp), G(x, m, torch.randn_like(z), cp)
    torch.testing.assert_close(a[:, :, below], b[:, :, below])
    assert (a - b).abs()[:, :, full].mean() > 1e-3
    # it changes band levels only: within a band's flat top the fine structure is copied's
    d = (a - cp)[0, 0, full, 0]
    assert float(d.std()) < float((cp[0, 0, full, 0] - cp[0, 0, full, 0].mean()).std())
    assert G.time_multiple == 4 and build_generator(G.arch()).arch() == G.arch()
    # the optional full-resolution touch-up starts at zero and never reaches the intact band
    Gf = BandGenerator(bands=32, base=4, depth=2, fine=2).eval()
    with torch.no_grad():
        torch.testing.assert_close(Gf(x, m, z, cp)[:, :, full], cp[:, :, full])
        for p in Gf.parameters():
            torch.nn.init.normal_(p, std=0.05)
        fo = Gf(x, m, z, cp)
    torch.testing.assert_close(fo[:, :, below], x[:, :, below])
    assert build_generator(Gf.arch()).fine == 2


def test_band_generator_exports_and_matches_onnxruntime(tmp_path: Path) -> None:
    torch.manual_seed(0)
    G = BandGenerator(bands=32, base=4, depth=2)
    for p in G.parameters():
        torch.nn.init.normal_(p, std=0.05)
    G.eval()
    cfg = ModelConfig(time_multiple=G.time_multiple, z_bins=G.z_bins)
    assert cfg.z_bins == 32  # one row of noise per band, not per bin
    path = tmp_path / "band.onnx"
    export.export_onnx(G, path, cfg)
    assert export.parity(G, path, cfg, frames=40) < ONNX_TOLERANCE
    # and the runtime draws z of that shape: a restore with it runs, keeps the
    # intact band and makes variants that differ above the cutoff
    from mp3fix.model import sha256_of
    from mp3fix.restore import Restorer
    from tests.helpers import lowpass_noise, stft_mag

    cfg.sha256 = sha256_of(path)
    path.with_name(path.name + ".json").write_text(json.dumps(cfg.to_dict()))
    x = lowpass_noise(44100 * 3, 6000, 44100, channels=2, seed=4)
    out = Restorer(path, device="cpu", threads=1).restore(x, 44100, seed=0, variants=2)
    a, b = stft_mag(out[0][0]), stft_mag(out[1][0])
    assert a.shape == b.shape and np.abs(a - b)[: 100].max() < 1e-3 * a[:100].max()
    assert np.abs(a - b)[200:].mean() > 1e-3 * a[200:].mean()


def test_level_l1_compares_band_levels_in_the_restored_band() -> None:
    analysis = band_matrices(F, CFG.sample_rate, CFG.n_fft, 64)[0]
    x, m, _, _ = _inputs()
    assert float(losses.level_l1(x, x, m, analysis)) == 0.0
    assert abs(float(losses.level_l1(x + 0.5, x, m, analysis)) - 0.5) < 1e-4  # a gain is a level change
    y = x.clone()
    y[:, :, :100] += 5.0  # the intact band does not count
    assert float(losses.level_l1(y, x, m, analysis)) == 0.0


def test_crps_levels_rewards_variants_spread_like_the_original() -> None:
    analysis = band_matrices(F, CFG.sample_rate, CFG.n_fft, 64)[0]
    x, m, _, _ = _inputs()
    # one answer whatever z is: the score is the L1 of the band levels
    y = x + 0.3
    assert abs(float(losses.crps_levels(x, x, y, m, analysis)) - float(losses.level_l1(x, y, m, analysis))) < 1e-5
    # originals whose band levels are N(0, 1) around the MP3's guess (a gain per
    # crop and frame): the best single answer (the median) scores E|g| = 0.80,
    # variants drawn from that same distribution 1.13 - 1.13 / 2 = 0.56
    g = torch.Generator().manual_seed(0)
    shape = (64, 1, 1, 64)
    base = torch.zeros((64, 1, F, 64))
    mask = torch.ones_like(base)
    target = base + torch.randn(shape, generator=g)
    point = float(losses.crps_levels(base, base, target, mask, analysis))
    spread = float(losses.crps_levels(base + torch.randn(shape, generator=g), base + torch.randn(shape, generator=g),
                                      target, mask, analysis))
    assert abs(point - 0.80) < 0.04 and abs(spread - 0.56) < 0.04, (point, spread)
    # too wide is worse again: N(0, 5^2) variants score 4.07 - 2.82 = 1.25
    wide = float(losses.crps_levels(base + 5 * torch.randn(shape, generator=g),
                                    base + 5 * torch.randn(shape, generator=g), target, mask, analysis))
    assert abs(wide - 1.25) < 0.1 and wide > point, wide


def test_crps_mean_level_scores_each_crops_overall_level() -> None:
    analysis = band_matrices(F, CFG.sample_rate, CFG.n_fft, 64)[0]
    g = torch.Generator().manual_seed(1)
    n = 256
    base = torch.zeros((n, 1, F, 32))
    mask = torch.from_numpy(np.broadcast_to(band_mask(200, F, 8)[None, None, :, None], base.shape).copy())
    # originals N(0, 1) louder or quieter than the guess, crop by crop: as for
    # crps_levels, the median scores 0.80 and variants spread like them 0.56
    target = base + torch.randn((n, 1, 1, 1), generator=g)
    point = float(losses.crps_mean_level(base, base, target, mask, analysis))
    spread = float(losses.crps_mean_level(base + torch.randn((n, 1, 1, 1), generator=g),
                                          base + torch.randn((n, 1, 1, 1), generator=g), target, mask, analysis))
    assert abs(point - 0.80) < 0.08 and abs(spread - 0.56) < 0.08, (point, spread)
    # frame-by-frame noise that averages out over a crop does not count as spread
    jitter = float(losses.crps_mean_level(base + torch.randn(base.shape[:1] + (1, 1, 32), generator=g),
                                          base + torch.randn(base.shape[:1] + (1, 1, 32), generator=g),
                                          target, mask, analysis))
    assert jitter > 0.7, jitter
    # the offset that moves the target to the output's overall level
    off = losses.level_offset(base + 0.5, base, mask, analysis)
    assert torch.allclose(off, torch.full((n,), 0.5), atol=1e-4)
    # crops with nothing restored count nothing
    none = torch.zeros_like(mask)
    assert float(losses.crps_mean_level(base, base, target, none, analysis)) == 0.0


def test_level_z_holds_the_last_z_channel_over_each_crop_trains_and_exports(tmp_path: Path, monkeypatch) -> None:
    x = torch.zeros((4, 1, F, 16))
    z = train.draw_train_z(x, 2, 1)
    assert z.shape == (4, 2, F, 16)
    assert torch.all(z[:, 1] == z[:, 1, :1, :1]) and z[:, 1, 0, 0].std() > 0
    assert z[:, 0].std() > 0.5 and len(torch.unique(z[0, 0])) > 100
    data, run = tmp_path / "data", tmp_path / "run"
    assert _tiny_band_run_logs(data, run, ["--level-z", "1"], "level_z") > 0
    # the exported sidecar tells the runtime to hold that channel over the file
    models = tmp_path / "models"
    monkeypatch.setattr(sys, "argv", ["export", "--run", str(run), "--models", str(models), "--name", "lz",
                                      "--data", str(data)])
    export.main()
    from mp3fix.model import load_config

    cfg = load_config(models / "lz.onnx")
    assert cfg.z_global_channels == 1 and cfg.z_global_brighter in (1.0, -1.0)


def test_brighter_sign_follows_the_generator() -> None:
    """export.brighter_sign: +1 for a generator whose restored band rises with the
    file-wide z channel, -1 for one whose band falls with it."""

    class Follows(torch.nn.Module):
        def __init__(self, sign: float) -> None:
            super().__init__()
            self.sign = sign

        def forward(self, x, m, z, cp):
            return x + m * self.sign * z[:, -1:].mean(dim=2, keepdim=True)

    cfg = ModelConfig(z_bins=64, z_global_channels=1)
    assert export.brighter_sign(Follows(1.0), cfg) == 1.0
    assert export.brighter_sign(Follows(-1.0), cfg) == -1.0


def _tiny_band_run_logs(data: Path, run: Path, flags: list[str], column: str) -> float:
    """Two steps of a tiny band generator on tiny data with ``flags``; the last
    logged value of ``column``."""
    _tiny_data(data)
    train.main(["--data", str(data), "--run", str(run), "--batch", "2", "--crop", "32", "--warmup", "100",
                "--val-every", "2", "--ckpt-every", "2", "--threads", "1", "--arch", "band", "--bands", "32",
                "--base", "4", "--depth", "2", "--steps", "2", *flags])
    header, *rows = (run / "log.csv").read_text().splitlines()
    return float(rows[-1].split(",")[header.split(",").index(column)])


def test_training_with_the_crps_term_logs_it(tmp_path: Path) -> None:
    assert _tiny_band_run_logs(tmp_path / "data", tmp_path / "run", ["--crps", "1"], "crps") > 0


def test_training_with_the_band_critic_and_switching_back(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    args = ["--data", str(data), "--run", str(run), "--batch", "2", "--crop", "32", "--warmup", "0",
            "--val-every", "2", "--ckpt-every", "2", "--threads", "1", "--arch", "band", "--bands", "32",
            "--base", "4", "--depth", "2", "--critic-base", "8"]
    train.main(args + ["--critic", "band", "--steps", "2"])
    header, *rows = (run / "log.csv").read_text().splitlines()
    assert float(rows[-1].split(",")[header.split(",").index("d_loss")]) > 0  # the critic trained
    _, _, D, _ = export.load_run(run)
    assert isinstance(D, BandCritic)
    band_weights = torch.load(run / "last.pt", weights_only=False)["D"]
    # back to the bins critic, asked for (a resumed run keeps its recipe otherwise): a new one, the generator goes on
    train.main(args + ["--steps", "4", "--critic", "bins"])
    st = torch.load(run / "last.pt", weights_only=False)
    assert st["step"] == 4 and st["arch"]["critic_kind"] == "bins"
    _, _, D, _ = export.load_run(run)
    assert type(D) is Critic
    name = "convs.0.parametrizations.weight.original"
    assert not torch.equal(st["D"][name], band_weights[name])


def test_training_a_band_generator_by_distillation(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    teacher_run = tmp_path / "teacher"
    common = ["--data", str(data), "--batch", "2", "--crop", "32", "--warmup", "1", "--val-every", "4",
              "--ckpt-every", "2", "--threads", "1"]
    train.main(common + ["--run", str(teacher_run), "--base", "4", "--depth", "2", "--steps", "2"])
    G_raw, G_avg, D, step = export.load_run(teacher_run)
    state = tmp_path / "state"
    state.mkdir()
    torch.save({k: v.half() for k, v in G_avg.state_dict().items()}, state / "generator-ema.pt")
    (state / "state.json").write_text(json.dumps({"step": step, "arch": G_avg.arch()}))
    run = tmp_path / "student"
    args = common + ["--run", str(run), "--arch", "band", "--bands", "32", "--base", "4", "--depth", "2",
                     "--distill", str(state)]
    train.main(args + ["--steps", "4"])
    header, *rows = (run / "log.csv").read_text().splitlines()
    assert float(rows[-1].split(",")[header.split(",").index("distill")]) > 0
    train.main(["--data", str(data), "--run", str(run), "--steps", "6", "--threads", "1", "--crop", "32",
                "--batch", "2"])  # resumes as a band generator without the flags
    _, G, _, step = export.load_run(run)
    assert step == 6 and isinstance(G, BandGenerator) and G.bands == 32
    # with a file-wide z and its median anchored to the teacher: both terms train
    anchored = tmp_path / "anchored"
    train.main(common + ["--run", str(anchored), "--arch", "band", "--bands", "32", "--base", "4", "--depth",
                         "2", "--distill", str(state), "--level-z", "1", "--level-z-anchor", "--steps", "2"])
    header, *rows = (anchored / "log.csv").read_text().splitlines()
    last = dict(zip(header.split(","), rows[-1].split(","), strict=True))
    assert float(last["distill"]) > 0 and float(last["level_z"]) > 0


def test_extension_gain_points_parse_and_bad_ones_are_refused() -> None:
    assert export.parse_points("8000:0, 10000:-2.5") == [[8000.0, 0.0], [10000.0, -2.5]]
    assert export.parse_points("") == []
    for bad in ("8000", "8000:0:1", "a:b"):
        with pytest.raises(SystemExit, match="extension-gain-db"):
            export.parse_points(bad)


def test_tilt_darkens_both_sides_alike_above_1khz(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    pairs = train.Pairs(data / "train.npz", CFG)
    plain = pairs.batch(np.random.default_rng(5), 6, 32, 0.0)
    tilted = pairs.batch(np.random.default_rng(5), 6, 32, 0.0, tilt_db=6.0)  # same crops
    k0 = 1000.0 * CFG.n_fft / CFG.sample_rate
    octaves = np.log2(np.maximum(np.arange(F), k0) / k0)
    slopes = []
    for side in (0, 1):  # x (the MP3) and y (the original)
        a, b = plain[side][:, 0].numpy(), tilted[side][:, 0].numpy()
        loud = a > np.log(CFG.log_floor) + 5  # far above the floor: log of a gain is exact there
        db = 20 / np.log(10) * (b - a)  # (crops, bins, frames), dB
        s = np.array([np.median(db[i][loud[i]] / -np.maximum(octaves[:, None], 1e-9)[loud[i].nonzero()[0]][:, 0])
                      for i in range(6)])
        assert np.all(np.abs(db[:, : int(k0)][loud[:, : int(k0)]]) < 1e-3)  # nothing changes below 1 kHz
        slopes.append(s)
    assert np.allclose(slopes[0], slopes[1], atol=0.05)  # one tilt per crop, on both sides (floor: not exact)
    assert np.all((slopes[0] >= 0) & (slopes[0] <= 6.0)) and np.ptp(slopes[0]) > 0.5


def test_full_band_originals_drops_crops_whose_original_has_its_own_edge(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    d = dict(np.load(data / "train.npz"))
    y = d["y"].copy()
    y[:2] = d["x"][:2]  # two originals that stop where their MP3 does: a lossy release's own low-pass
    np.savez(data / "train.npz", x=d["x"], y=y, cutoff=d["cutoff"], config=np.arange(len(y), dtype=np.int16))
    every, full = train.Pairs(data / "train.npz", CFG), train.Pairs(data / "train.npz", CFG, full_band_originals=True)
    assert len(every) == len(y) and len(full) == len(y) - 2
    assert np.array_equal(full.y, y[2:])


def test_batch_cuts_the_stored_frames_and_the_mask_of_each_crop(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    pairs = train.Pairs(data / "train.npz", CFG)
    rng = np.random.default_rng(3)
    x, y, m, copied = pairs.batch(np.random.default_rng(3), 4, 32, 0.0)
    idx = rng.integers(0, len(pairs), 4)  # the same draws as the batch made
    t0 = rng.integers(0, 128 - 32 + 1, 4)
    for b in range(4):
        assert np.array_equal(x[b, 0].numpy(), pairs.x[idx[b], :, t0[b] : t0[b] + 32].astype(np.float32))
        assert np.array_equal(y[b, 0].numpy(), pairs.y[idx[b], :, t0[b] : t0[b] + 32].astype(np.float32))
        assert np.array_equal(m[b, 0, :, 0].numpy(), pairs.masks[pairs.cutoff[idx[b]]].astype(np.float32))
        src = pairs.sources[pairs.cutoff[idx[b]]]
        assert np.array_equal(copied[b, 0].numpy(), x[b, 0].numpy()[src])


def test_pack_keeps_restorable_crops_within_half_a_step(tmp_path: Path) -> None:
    from mp3fix.train import pack

    data = _tiny_data(tmp_path / "data")
    d = dict(np.load(data / "train.npz"))
    full = d["x"].copy()
    full[:3] = d["y"][:3]  # three full-band crops: nothing to restore, not worth carrying
    np.savez(data / "train.npz", x=full, y=d["y"], cutoff=d["cutoff"], config=np.arange(8, dtype=np.int16))
    size = pack.pack(data / "train.npz", tmp_path / "p" / "train.pack", 4, seed=0, cfg=CFG)
    assert size < 0.5 * 4 * 2 * F * 128 * 2  # well under the float16 pairs
    n = pack.unpack(tmp_path / "p" / "train.pack", tmp_path / "u" / "train.npz")
    u = np.load(tmp_path / "u" / "train.npz")
    assert n == 4 and u["x"].shape == (4, F, 128) and u["x"].dtype == np.float16
    kept = u["config"]  # config doubles as the crop's index here
    assert np.all(kept >= 3) and len(set(kept)) == 4
    step = pack.STEP
    for side in ("x", "y"):
        err = np.abs(u[side].astype(np.float32) - d[side][kept].astype(np.float32))
        assert err.max() <= step / 2 + 2e-2  # rounding plus float16's own steps around -6
    assert len(train.Pairs(tmp_path / "u" / "train.npz", CFG)) == 4  # the trainer keeps every carried crop


def test_training_stops_after_minutes_and_keeps_the_best(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    train.main(["--data", str(data), "--run", str(run), "--batch", "2", "--crop", "32", "--base", "4", "--depth",
                "2", "--warmup", "1000", "--val-every", "2", "--ckpt-every", "1000", "--threads", "1",
                "--steps", "100000", "--minutes", "0.001", "--keep-best"])
    st = torch.load(run / "last.pt", weights_only=False)
    assert 1 <= st["step"] < 100  # stopped by the clock, with a checkpoint
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["step"] <= st["step"] and best["best"] == st["best"] < float("inf")
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[-1].startswith(f"{st['step']},") and rows[-1].split(",")[6] != ""  # validated at the stop


def test_fill_first_fills_the_dropouts_as_the_runtime_does(tmp_path: Path) -> None:
    from mp3fix.model import extension_gain, fill_holes, hole_fill_bins

    data = _tiny_data(tmp_path / "data")
    cfg = ModelConfig(hole_fill_bins=64, hole_fill_db=30.0, hole_fill_hz=[0.0, 12500.0],
                      extension_gain_db=[[1000.0, -3.0]])
    pairs = train.Pairs(data / "train.npz", cfg)
    x, _, _, _ = pairs.batch(np.random.default_rng(0), 4, 32, 0.0)
    x[:, :, 100:140, 5:15] = float(np.log(cfg.log_floor))  # the encoder dropped a band for 10 frames
    cut = pairs.last_cut
    z = torch.randn((4, cfg.z_channels) + tuple(x.shape[2:]))
    seen: dict[str, torch.Tensor] = {}
    level = torch.full_like(x, -4.0)  # the stub generator's restoration: one level everywhere

    def stub(xx: torch.Tensor, mm: torch.Tensor, zz: torch.Tensor, cc: torch.Tensor) -> torch.Tensor:
        seen.update(x=xx, m=mm, z=zz, cp=cc)
        return level

    filled, copied = train.fill_first(stub, x, cut, z, pairs, cfg)
    assert seen["z"] is z and torch.equal(seen["x"], x)
    changed = (filled != x).numpy()
    for b in range(4):
        c = int(cut[b])
        lo = c - hole_fill_bins(c, cfg)
        assert 140 < c < 160 and lo == c - 64  # the MP3 stops at bin 150: 64 bins filled
        # the generator ran as if the cutoff were lo: its mask and its band-replicated input
        assert np.array_equal(seen["m"][b, 0, :, 0].numpy(), band_mask(lo, F, cfg.mask_ramp_bins))
        assert np.array_equal(seen["cp"][b, 0].numpy(), x[b, 0].numpy()[copy_phase_sources(lo, F, 64)])
        # the runtime's rule on magnitudes (mp3fix.model.fill_holes), calibrated as the runtime does
        mp3 = np.maximum(np.exp(x[b, 0].numpy().astype(np.float64)) - cfg.log_floor, 0.0)
        est = max(np.exp(-4.0 + extension_gain(c, cfg)) - cfg.log_floor, 0.0)
        ref = fill_holes(mp3.astype(np.complex128), np.full(mp3.shape, est, np.complex128), mp3, lo, c, 30.0)
        hole = np.abs(ref) != mp3
        expected = np.where(hole, np.log(np.abs(ref) + cfg.log_floor), x[b, 0].numpy())
        np.testing.assert_allclose(filled[b, 0].numpy(), expected, rtol=0, atol=1e-5)
        assert changed[b, 0, 100:140, 5:15].all()  # the dropout is filled
        assert not changed[b, 0, :lo].any() and not changed[b, 0, c:].any()  # nothing outside the band
        # and the restoration's band-replicated input is made from the filled band
        assert np.array_equal(copied[b, 0].numpy(), filled[b, 0].numpy()[copy_phase_sources(c, F, 64)])


def test_training_with_fill_first_runs_the_filling_each_step(tmp_path: Path, monkeypatch) -> None:
    data = _tiny_data(tmp_path / "data")
    calls = []
    real = train.fill_first

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args[5].hole_fill_bins)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "fill_first", counted)
    train.main(["--data", str(data), "--run", str(tmp_path / "run"), "--batch", "2", "--crop", "32",
                "--warmup", "100", "--val-every", "3", "--ckpt-every", "3", "--threads", "1", "--arch", "band",
                "--bands", "32", "--base", "4", "--depth", "2", "--fill-first", "48:30", "--steps", "3"])
    # each of the 3 training steps, then each of validation's 6 batches (its inputs filled too)
    assert calls == [48] * (3 + 6)


def _save_run(folder: Path, G: BandGenerator, step: int) -> None:
    folder.mkdir(parents=True)
    arch = {**G.arch(), "critic_base": 4, "critic_kind": "bins"}
    D = build_critic(arch)
    torch.save({"G": G.state_dict(), "G_ema": G.state_dict(), "D": D.state_dict(), "arch": arch, "step": step},
               folder / "last.pt")


def test_soup_averages_the_runs_generators_and_exports(tmp_path: Path) -> None:
    from mp3fix.train import soup

    torch.manual_seed(0)
    Ga, Gb = BandGenerator(base=4, depth=2), BandGenerator(base=4, depth=2)
    for p in list(Ga.parameters()) + list(Gb.parameters()):  # the heads start at zero: give them weights
        torch.nn.init.normal_(p, std=0.1)
    _save_run(tmp_path / "a", Ga, 10)
    _save_run(tmp_path / "b", Gb, 12)
    soup.main(["--out", str(tmp_path / "s"), str(tmp_path / "a"), str(tmp_path / "b"), "--weights", "3,1"])
    _, G, _, step = export.load_run(tmp_path / "s")
    assert step == 12
    recipe = json.loads((tmp_path / "s" / "args.json").read_text())  # what the sidecar will say it is
    assert [r["step"] for r in recipe["soup"]] == [10, 12] and recipe["weights"] == [3.0, 1.0]
    sa, sb, ss = Ga.state_dict(), Gb.state_dict(), G.state_dict()
    assert torch.allclose(ss["stem.weight"], 0.75 * sa["stem.weight"] + 0.25 * sb["stem.weight"], atol=1e-6)
    assert torch.equal(ss["centres"], sa["centres"])  # index buffers are kept, not averaged
    # one source at full weight is that source's function
    soup.main(["--out", str(tmp_path / "s1"), str(tmp_path / "a"), str(tmp_path / "b"), "--weights", "1,0"])
    _, G1, _, _ = export.load_run(tmp_path / "s1")
    x, m, z, cp = _inputs(n=1, t=32, seed=1)
    with torch.no_grad():
        assert torch.allclose(G1(x, m, z, cp), Ga.eval()(x, m, z, cp), atol=1e-5)
    # a different architecture is refused with one line
    _save_run(tmp_path / "c", BandGenerator(base=8, depth=2), 5)
    with pytest.raises(SystemExit, match="differs"):
        soup.main(["--out", str(tmp_path / "s2"), str(tmp_path / "a"), str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="neither a run"):
        soup.main(["--out", str(tmp_path / "s3"), str(tmp_path / "a"), str(tmp_path / "nothing")])


def test_init_from_a_train_state_counts_steps_from_its_step(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    common = ["--data", str(data), "--batch", "2", "--crop", "32", "--warmup", "1", "--val-every", "4",
              "--ckpt-every", "2", "--threads", "1", "--base", "4", "--depth", "2"]
    train.main(common + ["--run", str(tmp_path / "first"), "--steps", "3"])
    G_raw, G_avg, D, step = export.load_run(tmp_path / "first")
    state = tmp_path / "state"
    export.write_train_state(state, G_raw, G_avg, D, step, G_avg.arch())
    # --steps at or below the weights' own step would train nothing: one clear line instead of a silent exit
    with pytest.raises(SystemExit, match="at step 3 already.*--steps above 3"):
        train.main(common + ["--run", str(tmp_path / "next"), "--init", str(state), "--steps", "3"])
    train.main(common + ["--run", str(tmp_path / "next"), "--init", str(state), "--steps", "5"])
    assert export.load_run(tmp_path / "next")[3] == 5


def test_a_fine_touch_up_added_at_init_starts_at_zero_and_freeze_base_trains_only_it(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "data")
    common = ["--data", str(data), "--batch", "2", "--crop", "32", "--warmup", "100", "--val-every", "4",
              "--ckpt-every", "2", "--threads", "1"]
    train.main(common + ["--run", str(tmp_path / "first"), "--arch", "band", "--bands", "32", "--base", "4",
                         "--depth", "2", "--steps", "2"])
    G_raw, G_avg, D, step = export.load_run(tmp_path / "first")
    state = tmp_path / "state"
    export.write_train_state(state, G_raw, G_avg, D, step, G_avg.arch())
    # added to weights that lack it, the touch-up leaves the output as it was
    G0, Gf = build_generator(G_avg.arch()).eval(), build_generator(dict(G_avg.arch(), fine=3)).eval()
    train.load_adding_fine(G0, state / "generator-ema.pt")
    train.load_adding_fine(Gf, state / "generator-ema.pt")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 512, 16, generator=g) - 4
    m = torch.from_numpy(band_mask(200, 512, 8))[None, None, :, None].expand(1, 1, 512, 16).contiguous()
    z, cp = torch.randn(1, 2, 512, 16, generator=g), x[:, :, copy_phase_sources(200, 512, 64), :]
    with torch.no_grad():
        assert torch.equal(Gf(x, m, z, cp), G0(x, m, z, cp))
    # weights of another shape are refused in one line (SystemExit), not a torch traceback
    with pytest.raises(SystemExit, match="do not fit"):
        train.load_adding_fine(build_generator(dict(G_avg.arch(), bands=16)), state / "generator-ema.pt")
    with pytest.raises(SystemExit, match="give --fine N"):
        train.main(common + ["--run", str(tmp_path / "bad"), "--init", str(state), "--freeze-base",
                             "--steps", "4"])
    train.main(common + ["--run", str(tmp_path / "next"), "--init", str(state), "--fine", "3",
                         "--freeze-base", "--steps", "4"])
    trained = torch.load(tmp_path / "next" / "last.pt", weights_only=False)
    assert trained["arch"]["fine"] == 3 and trained["step"] == 4
    before = torch.load(state / "generator.pt")
    for name, w in trained["G"].items():
        if name.startswith("fine"):
            continue
        assert torch.equal(w, before[name].float()), name  # the band generator under it did not move
    assert trained["G"]["fine2.weight"].abs().max() > 0  # the touch-up did


# ------------------------------------------------ the training side on a user's folder (session 22's audit)


def test_added_tracks_never_move_a_held_out_track() -> None:
    tracks = [Path(f"m/{i:03d}.flac") for i in range(100)]
    first = dataset.split_tracks(tracks, 1234)
    # a plain reshuffle would move most test tracks: the previous split keeps them
    grown = dataset.split_tracks(tracks + [Path("m/100.flac"), Path("m/101.flac")], 1234, previous=first)
    for name in ("test", "val", "train"):
        assert set(first[name]) <= set(grown[name])
    assert sum(len(v) for v in grown.values()) == 102
    # a new track's split is a function of its name and the seed alone
    where = {t: k for k, v in grown.items() for t in v}
    assert dataset._hash_split("elsewhere/100.flac", 1234, 0.06, 0.1) == where["m/100.flac"]
    drawn = [dataset._hash_split(f"n{i}.flac", 1234, 0.06, 0.1) for i in range(2000)]
    assert 0.08 < drawn.count("test") / 2000 < 0.12 and 0.04 < drawn.count("val") / 2000 < 0.08
    # gone tracks are gone
    fewer = dataset.split_tracks(tracks[1:], 1234, previous=first)
    assert str(tracks[0]) not in sum(fewer.values(), [])


def _slow_fake_pairs(args: tuple) -> dict:
    import time as _time

    k = int(str(args[0])[1:].split(".")[0])
    _time.sleep(0.05 * ((5 - k) % 4))  # finish out of order
    res = _fake_pairs(args)
    res["x"] = [x + np.float16(k) for x in res["x"]]
    return res


def _fake_pairs_with_a_bad_track(args: tuple) -> dict:
    if str(args[0]).startswith("t3."):
        return {"x": [], "y": [], "cutoff": [], "config": [], "lags": [], "path": args[0], "seconds": 0.0,
                "error": f"{args[0]}: not a readable audio file"}
    return _fake_pairs(args)


def _fake_pairs_of_silence(args: tuple) -> dict:
    return {**_fake_pairs(args), "x": [], "y": [], "cutoff": [], "config": []}


def test_build_is_the_same_bytes_whatever_jobs_and_reports_bad_tracks(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(dataset, "_ffmpeg_duration", lambda p: 60.0)
    monkeypatch.setattr(dataset, "make_pairs", _slow_fake_pairs)
    tracks = [Path(f"t{i}.ogg") for i in range(12)]
    dataset.build(tmp_path / "one", tracks, 3, 1, 60.0, 1, 1)
    dataset.build(tmp_path / "two", tracks, 3, 1, 60.0, 1, 3)
    for name in ("train.npz", "val.npz", "splits.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    monkeypatch.setattr(dataset, "make_pairs", _fake_pairs_with_a_bad_track)
    dataset.build(tmp_path / "bad", tracks, 3, 1, 60.0, 1, 1)  # one corrupt track: skipped, said, built
    assert "skipped t3.ogg: not a readable audio file" in capsys.readouterr().out
    # a split left with no pairs at all is one clear error
    monkeypatch.setattr(dataset, "make_pairs", _fake_pairs_of_silence)
    with pytest.raises(dataset.DatasetError, match="split has no pairs"):
        dataset.build(tmp_path / "empty", tracks, 3, 1, 60.0, 1, 1)


@pytest.mark.parametrize(("flags", "says"), [
    (["--jobs", "0"], "--jobs and --crops must be at least 1"),
    (["--crops", "0"], "--jobs and --crops must be at least 1"),
    (["--configs-per-track", "13"], "--configs-per-track must be 1 to 12"),
    (["--excerpt", "1"], "--excerpt must be longer than a training crop"),
    (["--music", "/nonexistent"], "no such folder"),
])
def test_dataset_command_refuses_bad_arguments_in_one_line(tmp_path: Path, monkeypatch, capsys, flags,
                                                           says) -> None:
    monkeypatch.setattr(sys, "argv", ["dataset", "--out", str(tmp_path / "d"), *flags])
    with pytest.raises(SystemExit) as stop:
        dataset.main()
    assert stop.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_dataset_command_needs_three_tracks(tmp_path: Path, monkeypatch) -> None:
    music = tmp_path / "music"
    music.mkdir()
    (music / "notes.txt").write_text("not music")
    import soundfile as sf

    sf.write(music / "short.wav", np.zeros(4410, np.float32), 44100)
    monkeypatch.setattr(sys, "argv", ["dataset", "--out", str(tmp_path / "d"), "--music", str(music)])
    with pytest.raises(SystemExit, match=r"^error: 0 track\(s\) of 20 s or more .* at least 3 are needed"):
        dataset.main()


def test_resume_keeps_the_runs_recipe_and_says_what_a_flag_changes(tmp_path: Path, capsys) -> None:
    data = _tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    base = ["--data", str(data), "--run", str(run), "--batch", "2", "--crop", "32", "--base", "4", "--depth", "2",
            "--val-every", "2", "--ckpt-every", "2", "--threads", "1"]
    train.main(base + ["--steps", "2", "--warmup", "1", "--tilt-db", "3", "--no-extra"])
    # resumed with the same command minus the recipe: the recipe is the run's, not the defaults
    train.main(["--run", str(run), "--steps", "4", "--threads", "1"])
    saved = json.loads((run / "args.json").read_text())
    assert (saved["warmup"], saved["tilt_db"], saved["no_extra"], saved["data"]) == ("1", "3.0", "True", str(data))
    assert float((run / "log.csv").read_text().splitlines()[-1].split(",")[5]) > 0  # the critic still trains
    capsys.readouterr()
    train.main(["--run", str(run), "--steps", "6", "--threads", "1", "--tilt-db", "6"])  # a flag given anew wins
    assert "recipe changed on resuming: --tilt-db 6.0 (was 3.0)" in capsys.readouterr().out
    assert json.loads((run / "args.json").read_text())["tilt_db"] == "6.0"
    with pytest.raises(SystemExit, match="at step 6 already and --steps is 5"):
        train.main(["--run", str(run), "--steps", "5"])


def test_training_without_pairs_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"^error: no .*train\.npz: build the pairs"):
        train.main(["--data", str(tmp_path / "nothing"), "--run", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_training_after_the_step_with_a_checkpoint(tmp_path: Path, monkeypatch, signum) -> None:
    data = _tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    args = ["--data", str(data), "--run", str(run), "--batch", "2", "--crop", "32", "--base", "4", "--depth", "2",
            "--warmup", "100", "--val-every", "50", "--ckpt-every", "50", "--threads", "1"]
    real, calls = train.draw_train_z, []

    def draw(*a, **k):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 4:  # during step 4: what Ctrl-C or kill does
            os.kill(os.getpid(), signum)
        return real(*a, **k)

    monkeypatch.setattr(train, "draw_train_z", draw)
    handler = signal.getsignal(signum)
    with pytest.raises(SystemExit) as stop:
        train.main(args + ["--steps", "40"])
    assert stop.value.code == 128 + signum
    assert signal.getsignal(signum) == handler
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 4  # no steps lost
    assert (run / "log.csv").read_text().splitlines()[-1].startswith("4,")
    monkeypatch.setattr(train, "draw_train_z", real)
    train.main(args + ["--steps", "6"])
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 6


def test_trim_log_drops_rows_past_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("step,time\n10,1\n20,1\n30,1\n")
    train.trim_log(log, 20)  # killed after writing row 30, before its checkpoint
    assert log.read_text() == "step,time\n10,1\n20,1\n"
    train.trim_log(log, 20)
    assert log.read_text() == "step,time\n10,1\n20,1\n"


def test_progress_bar_run(tmp_path: Path, capsys) -> None:
    assert _tiny_band_run_logs(tmp_path / "data", tmp_path / "run", ["--progress", "bar"], "rec") > 0
    assert "step 2/2" in capsys.readouterr().out


def test_soup_of_level_z_runs_exports_the_file_wide_z_and_its_own_state(tmp_path: Path, monkeypatch) -> None:
    from mp3fix.model import load_config
    from mp3fix.train import soup

    data = tmp_path / "data"
    for name in ("a", "b"):
        _tiny_band_run_logs(data, tmp_path / name, ["--level-z", "1"], "level_z")
        shutil.rmtree(data)
    _tiny_data(data)
    summary = {"hours": {"train": 0.5, "val": 0.1, "test": 0.1}, "pairs": {"train": 8, "val": 8}, "seed": 7}
    (data / "splits.json").write_text(json.dumps({"splits": {}, "summary": summary}))
    soup.main(["--out", str(tmp_path / "s"), str(tmp_path / "a"), str(tmp_path / "b")])
    models = tmp_path / "models"
    (models / "train-state").mkdir(parents=True)
    (models / "train-state" / "state.json").write_text("{}")  # the shipped state, not to be replaced
    monkeypatch.setattr(sys, "argv", ["export", "--run", str(tmp_path / "s"), "--models", str(models),
                                      "--name", "soup"])
    export.main()
    cfg = load_config(models / "soup.onnx")
    assert cfg.z_global_channels == 1
    assert cfg.training["data"] == summary  # from the sources' own --data, not ./data/pairs
    assert (models / "soup-train-state" / "state.json").exists()
    assert (models / "train-state" / "state.json").read_text() == "{}"


def test_find_tracks_names_what_it_leaves_out(tmp_path: Path) -> None:
    import soundfile as sf

    music = tmp_path / "music"
    (music / "sub").mkdir(parents=True)
    noise = np.random.default_rng(0).normal(0, 0.1, (21 * 22050, 2)).astype(np.float32)
    sf.write(music / "sub" / "good é.flac", np.repeat(noise, 2, axis=0)[: 21 * 44100], 44100)
    sf.write(music / "low.wav", noise, 22050)  # band-limited at 11 kHz: a poor target
    sf.write(music / "short.wav", noise[:22050], 22050)
    (music / "broken.flac").write_bytes(b"fLaC" + bytes(100))
    (music / "cover.jpg").write_bytes(b"\xff\xd8")
    skipped: list[str] = []
    assert dataset.find_tracks(music, skipped=skipped) == [music / "sub" / "good é.flac"]
    said = "\n".join(skipped)
    assert "low.wav: sampled at 22050 Hz" in said and "short.wav: 1.0 s, shorter than 20 s" in said
    assert "broken.flac: cannot be read" in said and "cover.jpg" not in said
