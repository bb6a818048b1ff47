"""Train the stochastic GAN. Resumable; logs a CSV (and a plot) as it goes.

    python -m mp3fix.train.train --data data/pairs --run runs/gan --steps 20000

Run it in the background (``nohup ... &``); it checkpoints to ``RUN/last.pt``
every ``--ckpt-every`` steps and resumes from there when started again.
Step cost on 2 CPU cores (the defaults: batch 8, 512 bins x 128 frames, base 8):
~0.3 s, 0.5-0.7 s once the critic trains. ``--init models/train-state`` goes on
from the shipped model's weights (the band generator, ``nets.BandGenerator``,
0.2-0.4 s per step on one core without the critic), with their architecture;
add ``--distill models/unet-state --distill-weight 3 --nsim 16 --crps 10
--warmup 1000000`` for its recipe (the U-Net it was distilled from as a
teacher, the CRPS term that makes it use z, no critic; 0.3 s per step).
``--init models/unet-state`` goes on from that U-Net. ``--fine N`` with
``--init`` adds the band generator's full-resolution touch-up (N channels,
``nets.BandGenerator``) at zero, so training starts from the shipped output;
``--freeze-base`` then trains the touch-up alone.

On a GPU (``--device cuda``, the default where torch sees one) batches are cut
and augmented on the device; ``--minutes M`` stops with a checkpoint after M
minutes and ``--keep-best`` keeps ``RUN/best.pt`` (lowest validation LSD), for
short runs on a carried subset (``mp3fix.train.pack``, ``scripts/gpu-train.sh``).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from mp3fix.model import ModelConfig, band_mask, extension_gain, hole_fill_bins, load_config, shipped_model_path
from mp3fix.phase import copy_phase_sources
from mp3fix.spectral import detect_cutoff
from mp3fix.train.losses import (
    critic_hinge,
    crps_levels,
    crps_mean_level,
    envelope_loss,
    erb_filterbank,
    feature_matching,
    generator_hinge,
    level_l1,
    level_offset,
    lsd_db,
    nsim_loss,
    pooled_log_l1,
    visqol_band_weights,
)
from mp3fix.train.nets import BandGenerator, Generator, band_matrices, build_critic, build_generator


def crop_cutoffs(x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """The runtime's cutoff bin of each crop of MP3 log-magnitudes (N, F, T)."""
    return np.array([detect_cutoff(np.exp(2.0 * xi.astype(np.float32)), cfg.cutoff_drop_db, cfg.cutoff_width)
                     for xi in x])


class Pairs:
    """In-memory crops of (MP3, original) log-magnitudes with their cutoff bins."""

    def __init__(self, path: Path | list[Path], cfg: ModelConfig, full_band_originals: bool = False) -> None:
        files = [np.load(p) for p in (path if isinstance(path, list) else [path])]
        if len(files) == 1:
            x, y = files[0]["x"], files[0]["y"]
        else:
            x = np.concatenate([d["x"] for d in files])
            y = np.concatenate([d["y"] for d in files])
        # Cutoffs are re-detected per crop with the runtime's detector, so training
        # sees exactly the masks inference will use; full-band crops carry no
        # gradient (the mask is zero) and are dropped.
        cut = crop_cutoffs(x, cfg)
        keep = cut < cfg.n_bins - cfg.full_band_margin_bins
        if full_band_originals:
            # and crops whose *original* has its own cliff (a lossy release's
            # low-pass: 41% of the training crops) teach a level above it that
            # full-band music does not have
            keep &= crop_cutoffs(y, cfg) >= cfg.n_bins - cfg.full_band_margin_bins
        self.x = x[keep]
        self.y = y[keep]
        self.cutoff = cut[keep].astype(np.int64)
        self.cfg = cfg
        # lookup tables by cutoff: band mask, and band-replication source bins
        self.masks = np.stack([band_mask(c, cfg.n_bins, cfg.mask_ramp_bins) for c in range(cfg.n_bins + 1)])
        self.sources = np.stack([copy_phase_sources(c, cfg.n_bins, cfg.copy_width_bins)
                                 for c in range(cfg.n_bins + 1)])
        self.to("cpu")

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> Pairs:
        """Keep the crops (float16) and lookup tables on ``device``, where batches are cut and augmented.

        On a GPU this takes the per-step data work off the CPU (batch 32 in
        NumPy costs more than the step itself there); on the CPU the tensors
        share memory with the arrays.
        """
        self.device = torch.device(device)
        self._x = torch.from_numpy(self.x).to(self.device)
        self._y = torch.from_numpy(self.y).to(self.device)
        self._cut = torch.from_numpy(self.cutoff).to(self.device)
        self._masks = torch.from_numpy(self.masks.astype(np.float32)).to(self.device)
        self._sources = torch.from_numpy(self.sources.astype(np.int64)).to(self.device)
        return self

    def batch(self, rng: np.random.Generator, size: int, crop: int, gain_db: float,
              tilt_db: float = 0.0) -> tuple[torch.Tensor, ...]:
        dev = self.device
        idx = rng.integers(0, len(self), size)
        T = self.x.shape[-1]
        t0 = rng.integers(0, T - crop + 1, size)
        idx_t = torch.from_numpy(idx).to(dev)
        if crop == T:
            x, y = self._x[idx_t], self._y[idx_t]
        else:
            frames = torch.from_numpy(t0[:, None] + np.arange(crop)[None, :]).to(dev)  # (B, crop)
            frames = frames[:, None, :].expand(-1, self.x.shape[1], -1)
            x = torch.take_along_dim(self._x[idx_t], frames, dim=2)
            y = torch.take_along_dim(self._y[idx_t], frames, dim=2)
        x, y = x.float(), y.float()
        if gain_db > 0 or tilt_db > 0:
            # a true gain change in the linear domain, applied to both sides; with
            # tilt_db, also a spectral tilt of 0 to -tilt_db dB per octave above
            # 1 kHz (a darker recording), so that the model learns to follow the
            # slope it sees below the cutoff instead of one average slope
            db = rng.uniform(-gain_db, gain_db, size)[:, None] * np.ones((1, x.shape[1]))
            if tilt_db > 0:
                k0 = 1000.0 * self.cfg.n_fft / self.cfg.sample_rate
                octaves = np.log2(np.maximum(np.arange(x.shape[1]), k0) / k0)
                db = db - rng.uniform(0.0, tilt_db, size)[:, None] * octaves[None, :]
            g = torch.from_numpy((10 ** (db / 20)).astype(np.float32)).to(dev)[:, :, None]
            floor = self.cfg.log_floor
            x = torch.log((torch.exp(x) - floor).clamp_min(0) * g + floor)
            y = torch.log((torch.exp(y) - floor).clamp_min(0) * g + floor)
        cut = self._cut[idx_t]
        m = self._masks[cut][:, None, :, None].expand(-1, 1, -1, crop).contiguous()
        src = self._sources[cut][:, :, None].expand(-1, -1, crop)  # (B, F, crop)
        copied = torch.take_along_dim(x, src, dim=1)
        self.last_cut = cut
        return x[:, None], y[:, None], m, copied[:, None]


def fill_first(G: Generator | BandGenerator, x: torch.Tensor, cut: torch.Tensor, z: torch.Tensor, pairs: Pairs,
               cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The runtime's dropout filling (``Restorer._fill_dropouts``) on a batch of
    MP3 log-magnitudes ``x`` (B, 1, F, T) with cutoff bins ``cut`` (B,): ``G``
    restores each crop as if its cutoff were ``hole_fill_bins`` lower, with the
    main pass's ``z``, and a bin there where the MP3 is more than
    ``cfg.hole_fill_db`` below that restoration (after the level calibration)
    takes its value. Returns the filled ``x`` and the band-replicated input made
    from it, so that training sees the inputs the runtime gives the model."""
    cuts = cut.cpu().numpy()
    fill = np.array([hole_fill_bins(int(c), cfg) for c in cuts])
    if not fill.any():
        return x, torch.take_along_dim(x[:, 0], pairs._sources[cut][:, :, None].expand(-1, -1, x.shape[-1]),
                                       dim=1)[:, None]
    lo = cut - torch.from_numpy(fill).to(cut.device)
    crop = x.shape[-1]
    m = pairs._masks[lo][:, None, :, None].expand(-1, 1, -1, crop)
    cp = torch.take_along_dim(x[:, 0], pairs._sources[lo][:, :, None].expand(-1, -1, crop), dim=1)[:, None]
    gain = torch.tensor([extension_gain(int(c), cfg) for c in cuts], device=x.device)[:, None, None, None]
    with torch.no_grad():
        est = G(x, m.contiguous(), z, cp.contiguous())
    mag = (torch.exp(est + gain) - cfg.log_floor).clamp_min(0.0)
    k = torch.arange(x.shape[2], device=x.device)[None, None, :, None]
    band = (k >= lo[:, None, None, None]) & (k < cut[:, None, None, None])
    hole = band & ((torch.exp(x) - cfg.log_floor).clamp_min(0.0) < mag * float(10.0 ** (-cfg.hole_fill_db / 20.0)))
    x = torch.where(hole, torch.log(mag + cfg.log_floor), x)
    copied = torch.take_along_dim(x[:, 0], pairs._sources[cut][:, :, None].expand(-1, -1, crop), dim=1)[:, None]
    return x, copied


def draw_train_z(x: torch.Tensor, channels: int, global_channels: int = 0) -> torch.Tensor:
    """N(0, 1) z shaped like ``x`` with ``channels`` channels; the last
    ``global_channels`` of them hold one value per crop over all bins and frames
    (the runtime's ``ModelConfig.z_global_channels``: one per file and variant)."""
    z = torch.randn((x.shape[0], channels) + tuple(x.shape[2:]), device=x.device)
    if global_channels:
        g = torch.randn((x.shape[0], global_channels, 1, 1), device=x.device)
        z[:, channels - global_channels:] = g.expand(-1, -1, *x.shape[2:])
    return z


def validate(G: Generator | BandGenerator, val: Pairs, cfg: ModelConfig, n: int = 192,
             fill: bool = False, global_channels: int = 0) -> dict[str, float]:
    """Log-spectral distance of ``G`` on ``n`` whole validation crops (fixed seed)
    in the band above each cutoff. With ``fill``, the inputs are first filled
    as the runtime fills them (:func:`fill_first`, with ``G`` itself), so that a
    ``--fill-first`` run is measured on what it is trained for. The last
    ``global_channels`` of z are held at 0, their median, as the runtime's
    first variant holds them."""
    was_training = G.training
    G.eval()
    rng = np.random.default_rng(0)
    lsd_model, lsd_mp3, n_b = 0.0, 0.0, 0
    with torch.no_grad():
        for _ in range(max(1, n // 32)):
            x, y, m, cp = val.batch(rng, 32, val.x.shape[-1], 0.0)
            z = torch.from_numpy(rng.standard_normal((x.shape[0], cfg.z_channels) + x.shape[2:]).astype(np.float32))
            z = z.to(x.device)
            if global_channels:
                z[:, cfg.z_channels - global_channels:] = 0.0
            if fill:
                x, cp = fill_first(G, x, val.last_cut, z, val, cfg)
            out = G(x, m, z, cp)
            lsd_model += float(lsd_db(out, y, m))
            lsd_mp3 += float(lsd_db(x, y, m))
            n_b += 1
    G.train(was_training)
    return {"val_lsd_high": lsd_model / n_b, "val_lsd_high_mp3": lsd_mp3 / n_b}


def plot(csv_path: Path, png: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot(steps, [float(r["rec"]) for r in rows], label="reconstruction")
    ax[0].plot(steps, [float(r["d_loss"]) for r in rows], label="critic (hinge)")
    ax[0].set_xlabel("step")
    ax[0].legend()
    v = [(int(r["step"]), float(r["val_lsd_high"]), float(r["val_lsd_high_mp3"])) for r in rows if r["val_lsd_high"]]
    if v:
        ax[1].plot([a for a, _, _ in v], [b for _, b, _ in v], label="model")
        ax[1].plot([a for a, _, _ in v], [c for _, _, c in v], label="MP3")
        ax[1].set_ylabel("val LSD, restored band (dB)")
        ax[1].set_xlabel("step")
        ax[1].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)


def load_adding_fine(G: torch.nn.Module, path: Path) -> None:
    """fp16 weights from ``path`` into ``G``; a ``fine`` touch-up that ``G`` has
    and the weights lack keeps its initialisation (zero output)."""
    try:
        missing, unexpected = G.load_state_dict({k: v.float() for k, v in torch.load(path).items()}, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise SystemExit(f"{path}: weights do not fit this generator ({str(exc).splitlines()[-1].strip()})") from None
    if unexpected or any(not k.startswith("fine") for k in missing):
        raise SystemExit(f"{path}: weights do not fit this generator (missing {missing}, unexpected {unexpected})")


# Flags that belong to one session of a run, not to its recipe: a resumed run takes
# these as given (or their defaults), and every other flag from the run's args.json
# unless it is given again.
SESSION_FLAGS = frozenset({"run", "steps", "minutes", "threads", "device", "val_every", "ckpt_every", "keep_best",
                           "init", "progress"})


def given_flags(ap: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The ``dest`` of every option ``argv`` gives (not those left at their default)."""
    quiet = copy.deepcopy(ap)
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    return set(vars(quiet.parse_known_args(argv)[0]))


def recipe_from(ap: argparse.ArgumentParser, saved: dict[str, str], a: argparse.Namespace,
                given: set[str]) -> list[str]:
    """Set on ``a`` each recipe flag of a run's ``args.json`` (strings, as written)
    that ``given`` does not give anew; return one line per given flag that
    changes the recipe (``--lr 5e-05 (was 0.0002)``)."""
    changed = []
    for action in ap._actions:
        k = action.dest
        if k in SESSION_FLAGS or k not in saved or k == "help":
            continue
        text = saved[k]
        if text == "None":
            value = None
        elif isinstance(action, argparse._StoreTrueAction):
            value = text == "True"
        else:
            value = (action.type or str)(text)
        if k not in given:
            setattr(a, k, value)
        elif str(getattr(a, k)) != text:
            changed.append(f"{action.option_strings[0]} {getattr(a, k)} (was {text})")
    return changed


def trim_log(log_path: Path, step: int) -> None:
    """Drop the rows of ``log_path`` past ``step`` (written after the last checkpoint
    by a run that was then killed), so that a resumed run's log does not repeat steps."""
    if not log_path.exists():
        return
    rows = log_path.read_text().splitlines()
    keep = rows[:1] + [r for r in rows[1:] if r.split(",", 1)[0].isdigit() and int(r.split(",", 1)[0]) <= step]
    if len(keep) != len(rows):
        log_path.write_text("\n".join(keep) + "\n")


class StopRequest:
    """SIGINT or SIGTERM asks the run to stop after the current step, with a
    checkpoint; a second one stops it at once."""

    def __init__(self) -> None:
        self.signum = 0
        self.old: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # where Python delivers signals
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\nsignal {signum}: stopping after this step, with a checkpoint (again: at once)", flush=True)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--run", type=Path, default=Path("runs/gan"))
    ap.add_argument("--init", type=Path, help="start from fp16 weights in this folder (models/train-state)")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--arch", choices=["unet", "band"], default="unet",
                    help="unet: the full-resolution U-Net; band: predicts band levels only (nets.BandGenerator)")
    ap.add_argument("--bands", type=int, default=64, help="bands of --arch band")
    ap.add_argument("--fine", type=int, default=0,
                    help="channels of --arch band's full-resolution touch-up (0: none); with --init from a "
                         "state without one, it is added at zero (the output starts unchanged)")
    ap.add_argument("--freeze-base", action="store_true",
                    help="train only the --fine touch-up; the band generator under it stays as it is")
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--time-levels", type=int, default=2, help="U-Net levels that also halve time")
    ap.add_argument("--head", type=int, default=None,
                    help="channels of the full-resolution head (default: base); an --init or resumed model "
                         "with a narrower head is widened without changing its output")
    ap.add_argument("--critic-base", type=int, default=16)
    ap.add_argument("--critic", choices=["bins", "band"], default="bins",
                    help="what the critic sees: the spectrogram's bins, or the ERB band levels the band "
                         "generator predicts (nets.BandCritic)")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=800, help="steps of reconstruction only before the GAN")
    ap.add_argument("--adv", type=float, default=0.1)
    ap.add_argument("--fm", type=float, default=0.5)
    ap.add_argument("--nsim", type=float, default=0.0,
                    help="weight of the auditory-structure (NSIM) term; 0 leaves it out")
    ap.add_argument("--nsim-weights", choices=["flat", "visqol"], default="flat",
                    help="how the NSIM term weights its ERB bands: all alike, or by how much each moves "
                         "ViSQOL's score (losses.visqol_band_weights: almost all of it from 7.7 kHz up)")
    ap.add_argument("--envelope", type=float, default=0.0,
                    help="weight of the fast band-envelope term (losses.envelope_loss); 0 leaves it out")
    ap.add_argument("--crps", type=float, default=0.0,
                    help="weight of the two-sample CRPS of the band levels (losses.crps_levels), which "
                         "rewards variants that spread as far as the original is uncertain; 0 leaves it out "
                         "(above 0 each step runs the generator twice)")
    ap.add_argument("--level-z", type=float, default=0.0,
                    help="weight of the two-sample CRPS of each crop's mean band level "
                         "(losses.crps_mean_level); above 0 the last z channel is one N(0, 1) value per crop, "
                         "held over all its bands and frames (the runtime's ModelConfig.z_global_channels), "
                         "the distillation compares levels with each crop's mean taken out (see --level-z-anchor), "
                         "and each step runs the generator twice")
    ap.add_argument("--level-z-anchor", action="store_true",
                    help="with --level-z and --distill: distil the restoration at file-wide z 0 (the first "
                         "variant) onto the teacher's levels, overall level included, instead of every "
                         "restoration onto the teacher's shape alone (a third generator pass per step)")
    ap.add_argument("--distill", type=Path, default=None,
                    help="a train-state folder (models/unet-state): its averaged generator is a teacher whose "
                         "band levels the new one also learns (losses.level_l1)")
    ap.add_argument("--distill-weight", type=float, default=2.0)
    ap.add_argument("--gain-db", type=float, default=12.0)
    ap.add_argument("--tilt-db", type=float, default=0.0,
                    help="random spectral tilt of each crop, 0 to -TILT dB per octave above 1 kHz, on both sides")
    ap.add_argument("--fill-first", default=None, metavar="BINS:DB",
                    help="fill each crop's dropouts under its cutoff the way the runtime does (the averaged "
                         "generator's pass as if the cutoff were BINS lower, where the MP3 is DB below it, at "
                         "cutoffs up to 12.5 kHz) before the generator sees it; costs a third forward pass")
    ap.add_argument("--no-extra", action="store_true",
                    help="train on train.npz only, without the training-only packages' train-extra.npz")
    ap.add_argument("--full-band-originals", action="store_true",
                    help="train only on crops whose original has no cliff of its own below the top "
                         "(validation keeps every crop)")
    ap.add_argument("--ema", type=float, default=0.999,
                    help="decay of the exponential moving average of the generator's weights, which is what "
                         "validation and export use (0: the raw weights)")
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop (with a checkpoint) after this many minutes, even before --steps")
    ap.add_argument("--keep-best", action="store_true",
                    help="also keep RUN/best.pt: the checkpoint with the lowest validation LSD so far (a short "
                         "run on a small carried subset can overfit)")
    ap.add_argument("--progress", choices=["auto", "bar", "lines"], default="auto",
                    help="a rich progress bar (auto: on a terminal) or plain lines (a log file)")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    # a run goes on with the architecture it was started with, whatever the flags say,
    # and with the recipe of its args.json, but for the flags given again
    ckpt = a.run / "last.pt"
    if ckpt.exists() and (a.run / "args.json").exists():
        changed = recipe_from(ap, json.loads((a.run / "args.json").read_text()), a, given_flags(ap, argv))
        for line in changed:
            print(f"recipe changed on resuming: {line}", flush=True)
    for name in ("train.npz", "val.npz"):
        if not (a.data / name).exists():
            raise SystemExit(f"error: no {a.data / name}: build the pairs with `python -m mp3fix.train.dataset "
                             "--out DIR` and give --data DIR/pairs")
    saved = None
    if ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)["arch"]
    elif a.init:
        saved = json.loads((a.init / "state.json").read_text())["arch"]
    if saved is not None:
        fine = a.fine if not ckpt.exists() and a.init and not saved.get("fine", 0) else saved.get("fine", 0)
        a.arch, a.bands, a.fine = saved.get("kind", "unet"), saved.get("bands", a.bands), fine
        a.base, a.depth = saved["base"], saved["depth"]
        a.time_levels = saved.get("time_levels", saved["depth"])
        saved_head = saved.get("head") or a.base
    else:
        saved_head = None
    a.head = max(a.head or a.base, saved_head or 0)
    cfg = ModelConfig()
    if a.fill_first:
        bins, db = a.fill_first.split(":")
        cfg.hole_fill_bins, cfg.hole_fill_db, cfg.hole_fill_hz = int(bins), float(db), [0.0, 12500.0]
        # the filling is calibrated as the runtime calibrates it: with the shipped model's table
        cfg.extension_gain_db = load_config(shipped_model_path(), verify=False).extension_gain_db
    dev = torch.device(a.device)
    a.run.mkdir(parents=True, exist_ok=True)
    train_files = [a.data / "train.npz"]
    if not a.no_extra and (a.data / "train-extra.npz").exists():
        train_files.append(a.data / "train-extra.npz")
    train = Pairs(train_files, cfg, a.full_band_originals).to(dev)
    print(f"{len(train)} training crops with a cutoff, from {', '.join(f.name for f in train_files)}", flush=True)
    val = Pairs(a.data / "val.npz", cfg).to(dev)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    G = build_generator({"kind": a.arch, "bands": a.bands, "fine": a.fine, "base": a.base, "depth": a.depth,
                         "z_channels": cfg.z_channels, "time_levels": a.time_levels, "head": saved_head}).to(dev)
    teacher = None
    analysis = band_matrices(cfg.n_bins, cfg.sample_rate, cfg.n_fft, 64)[0].to(dev)  # distill and CRPS bands
    if a.distill:
        teacher = build_generator(json.loads((a.distill / "state.json").read_text())["arch"])
        teacher.load_state_dict({k: v.float() for k, v in torch.load(a.distill / "generator-ema.pt").items()})
        teacher = teacher.to(dev).eval().requires_grad_(False)
    D = build_critic({"critic_kind": a.critic, "critic_base": a.critic_base}).to(dev)

    def same_critic(arch: dict) -> bool:
        return arch.get("critic_base", 32) == a.critic_base and arch.get("critic_kind", "bins") == a.critic

    if a.freeze_base:
        if not a.fine:
            raise SystemExit("--freeze-base trains only the --fine touch-up: give --fine N")
        for name, p in G.named_parameters():
            p.requires_grad_(name.startswith("fine"))
    opt_g = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=a.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=a.lr, betas=(0.5, 0.9))
    step = 0
    rng = np.random.default_rng(1)
    if ckpt.exists():
        st = torch.load(ckpt, map_location=dev, weights_only=False)
        G.load_state_dict(st["G"])
        opt_g.load_state_dict(st["opt_g"])
        if same_critic(st["arch"]):
            D.load_state_dict(st["D"])
            opt_d.load_state_dict(st["opt_d"])
        else:  # the critic was resized or changed: it starts afresh, the generator goes on
            print(f"critic changed to {a.critic} (base {a.critic_base}): new critic", flush=True)
        step = st["step"]
        if step >= a.steps:
            raise SystemExit(f"{a.run} is at step {step} already and --steps is {a.steps}: nothing to train; "
                             f"give --steps above {step}")
        rng.bit_generator.state = st["rng"]
        # the optimisers' saved state carries the old learning rate; the flag wins,
        # so a run can be resumed with a lower rate for a final settling phase
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = a.lr
        print(f"resumed from {ckpt} at step {step} (lr {a.lr:g})", flush=True)
    elif a.init:
        load_adding_fine(G, a.init / "generator.pt")
        d_state = {k: v.float() for k, v in torch.load(a.init / "critic.pt").items()}
        init_arch = json.loads((a.init / "state.json").read_text())["arch"]
        key = "head.parametrizations.weight.original"
        if (init_arch.get("critic_kind", "bins") == a.critic
                and d_state[key].shape[1] == D.head.parametrizations.weight.original.shape[1]):
            D.load_state_dict(d_state)
        step = int(json.loads((a.init / "state.json").read_text())["step"])
        if step >= a.steps:  # --steps counts from 0, not from the weights' step: say so, not train nothing
            raise SystemExit(f"{a.init} is at step {step} already and --steps is {a.steps}: "
                             f"nothing to train; give --steps above {step}")
        print(f"initialised from {a.init} (step {step})", flush=True)
    # The averaged generator: a GAN's weights wander from step to step (ViSQOL
    # on 4 held-out tracks moved by up to 0.17 between checkpoints 3000 steps
    # apart), and the average of the recent ones is a steadier, usually better
    # generator. It starts from the raw weights when a run has none yet.
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    if ckpt.exists() and "G_ema" in st:
        G_ema.load_state_dict(st["G_ema"])
    elif not ckpt.exists() and a.init and (a.init / "generator-ema.pt").exists():
        load_adding_fine(G_ema, a.init / "generator-ema.pt")
    if a.head > G.head_channels and isinstance(G, Generator):
        print(f"head widened from {G.head_channels} to {a.head} channels", flush=True)
        G.widen_head(a.head)
        G_ema.widen_head(a.head)
        G_ema.requires_grad_(False)
        opt_g = torch.optim.Adam(G.parameters(), lr=a.lr, betas=(0.5, 0.9))  # new parameters: fresh moments
    (a.run / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(a).items()}, indent=1))
    log_path = a.run / "log.csv"
    trim_log(log_path, step)
    new_log = not log_path.exists()
    logf = log_path.open("a", newline="")
    log = csv.writer(logf)
    if new_log:
        log.writerow(["step", "time", "rec", "g_adv", "fm", "d_loss", "val_lsd_high", "val_lsd_high_mp3", "nsim",
                      "distill", "crps", "level_z"])
    t_start = time.time()
    acc = {"rec": 0.0, "g_adv": 0.0, "fm": 0.0, "d_loss": 0.0, "nsim": 0.0, "distill": 0.0, "crps": 0.0,
           "level_z": 0.0}
    n_acc = 0
    z_global = 1 if a.level_z > 0 else 0  # z channels held over each crop
    fb = erb_filterbank(cfg.n_bins, cfg.sample_rate, cfg.n_fft).to(dev)
    nsim_w = visqol_band_weights(cfg.sample_rate).to(dev) if a.nsim_weights == "visqol" else None
    deadline = time.time() + 60.0 * a.minutes if a.minutes else float("inf")
    best = st.get("best", float("inf")) if ckpt.exists() else float("inf")
    stop = False
    show_bar = a.progress == "bar" or (a.progress == "auto" and sys.stdout.isatty())
    bar = Progress(TextColumn("step {task.completed:.0f}/{task.total:.0f}"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[status]}"), TimeRemainingColumn(), disable=not show_bar)
    task = bar.add_task("train", total=a.steps, completed=step, status="")
    with bar, StopRequest() as stop_request:
        while step < a.steps and not stop:
            x, y, m, cp = (t.to(dev) for t in train.batch(rng, a.batch, a.crop, a.gain_db, a.tilt_db))
            z = draw_train_z(x, cfg.z_channels, z_global)
            if a.fill_first:
                x, cp = fill_first(G_ema, x, train.last_cut, z, train, cfg)
            out = G(x, m, z, cp)
            gan = step >= a.warmup
            if gan:
                # critic step
                d_real = D(y, x, m)
                d_fake = D(out.detach(), x, m)
                d_loss = critic_hinge(d_real[-1], d_fake[-1])
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                acc["d_loss"] += d_loss.item()
            rec = pooled_log_l1(out, y, m, cfg.log_floor)
            loss = rec
            if a.nsim > 0:
                ns = nsim_loss(out, y, m, fb, nsim_w)
                loss = loss + a.nsim * ns
                acc["nsim"] += ns.item()
            if a.envelope > 0:
                loss = loss + a.envelope * envelope_loss(out, y, m, fb)
            if a.crps > 0 or a.level_z > 0:
                out2 = G(x, m, draw_train_z(x, cfg.z_channels, z_global), cp)
                if a.crps > 0:
                    cr = crps_levels(out, out2, y, m, analysis)
                    loss = loss + a.crps * cr
                    acc["crps"] += cr.item()
                if a.level_z > 0:
                    lz = crps_mean_level(out, out2, y, m, analysis)
                    loss = loss + a.level_z * lz
                    acc["level_z"] += lz.item()
            if teacher is not None:
                d_out = out
                if a.level_z > 0 and a.level_z_anchor:
                    # the teacher's levels for the restoration at the median of the
                    # file-wide z (the first variant), all of them: the first
                    # variant keeps the level the teacher would give (one more pass)
                    z0 = z.clone()
                    z0[:, cfg.z_channels - z_global :] = 0.0
                    d_out = G(x, m, z0, cp)
                with torch.no_grad():
                    t_out = teacher(x, m, z, cp)
                # band levels, and (through the pooled cells) the shape inside bands
                if a.level_z > 0 and not a.level_z_anchor:
                    # the teacher's shape of the levels, at the student's overall level
                    t_out = t_out + level_offset(out, t_out, m, analysis).detach()[:, None, None, None] * m
                dl = level_l1(d_out, t_out, m, analysis) + pooled_log_l1(d_out, t_out, m, cfg.log_floor)
                loss = loss + a.distill_weight * dl
                acc["distill"] += dl.item()
            if gan:
                f_fake = D(out, x, m)
                g_adv = generator_hinge(f_fake[-1])
                fm = feature_matching([f.detach() for f in d_real], f_fake)
                loss = loss + a.adv * g_adv + a.fm * fm
                acc["g_adv"] += g_adv.item()
                acc["fm"] += fm.item()
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            if a.ema > 0:
                with torch.no_grad():
                    for pe, p in zip(G_ema.parameters(), G.parameters(), strict=True):
                        pe.lerp_(p, 1.0 - a.ema)
            else:
                G_ema.load_state_dict(G.state_dict())
            acc["rec"] += rec.item()
            n_acc += 1
            step += 1
            if step % 20 == 0:
                rate = (time.time() - t_start) / max(1, n_acc)
                print(f"step {step} rec {acc['rec'] / n_acc:.3f} adv {acc['g_adv'] / n_acc:.3f} "
                      f"d {acc['d_loss'] / n_acc:.3f} nsim {acc['nsim'] / n_acc:.3f} "
                      f"distill {acc['distill'] / n_acc:.3f} crps {acc['crps'] / n_acc:.3f} "
                      f"level_z {acc['level_z'] / n_acc:.3f} ({rate:.2f} s/step)",
                      flush=True)
            stop = time.time() >= deadline or bool(stop_request.signum)
            bar.update(task, completed=step, status=f"rec {acc['rec'] / max(1, n_acc):.3f}")
            if step % a.ckpt_every == 0 or step % a.val_every == 0 or step == a.steps or stop:
                do_val = step % a.val_every == 0 or step == a.steps or stop
                metrics = validate(G_ema, val, cfg, fill=bool(a.fill_first),
                                   global_channels=z_global) if do_val else {}
                row = [step, round(time.time() - t_start, 1)]
                row += [round(acc[k] / max(1, n_acc), 4) for k in ("rec", "g_adv", "fm", "d_loss")]
                row += [round(metrics.get("val_lsd_high", float("nan")), 3) if metrics else "",
                        round(metrics.get("val_lsd_high_mp3", float("nan")), 3) if metrics else ""]
                row += [round(acc[k] / max(1, n_acc), 4) for k in ("nsim", "distill", "crps", "level_z")]
                log.writerow(row)
                logf.flush()
                if metrics:
                    print(f"step {step} validation {metrics}", flush=True)
                    plot(log_path, a.run / "log.png")
                acc = dict.fromkeys(acc, 0.0)
                n_acc = 0
                t_start = time.time()
                improved = bool(metrics) and metrics["val_lsd_high"] < best
                if improved:
                    best = metrics["val_lsd_high"]
                state = {"G": G.state_dict(), "G_ema": G_ema.state_dict(), "D": D.state_dict(),
                         "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                         "step": step, "rng": rng.bit_generator.state, "best": best,
                         "arch": dict(G.arch(), critic_base=a.critic_base, critic_kind=a.critic)}
                saves = [(ckpt, state)]
                if a.keep_best and improved:  # weights only: it is for export, not for resuming
                    saves.append((a.run / "best.pt", {k: v for k, v in state.items() if not k.startswith("opt_")}))
                for path, content in saves:
                    tmp = path.with_suffix(".tmp")
                    torch.save(content, tmp)
                    tmp.replace(path)
    logf.close()
    if stop_request.signum:
        print(f"stopped by signal {stop_request.signum} at step {step}, checkpoint saved: the same command "
              "resumes", flush=True)
        raise SystemExit(128 + stop_request.signum)


if __name__ == "__main__":
    main(sys.argv[1:])
