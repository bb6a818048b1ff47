"""Export a training checkpoint: the ONNX generator + sidecar, and fp16 training state.

    python -m mp3fix.train.export --run runs/gan --models models [--status "..."]

Writes ``models/NAME.onnx`` and ``models/NAME.onnx.json`` (every runtime
setting, training summary, metrics, sha256) and ``models/train-state/``
(``models/NAME-train-state/`` for any other name than the shipped
``mp3fix-gan``: generator, averaged generator and critic weights in fp16, no
optimiser state) from which ``train.py --init`` can continue in a later
session. The training-data summary comes from the run's own ``--data``
(a soup's: its first source's) unless ``--data`` is given. The
ONNX model is the averaged generator (``train.py --ema``) when the run has one. Checks that onnxruntime
and torch agree on random inputs and prints the largest difference.

    python -m mp3fix.train.export --update models/NAME.onnx [--hole-fill ...] [--metrics M] [--status S]

rewrites only the sidecar of an exported model (its runtime settings, metrics
or status), leaving the ONNX file, its checksum and its training summary as
they are: for settings chosen after export, on models whose run is gone.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from mp3fix.model import DEFAULT_MODEL, ModelConfig, load_config, sha256_of
from mp3fix.train.nets import BandGenerator, Critic, Generator, build_critic, build_generator


def source_recipes(run_args: dict) -> list[dict]:
    """The training recipes (``train.py``'s args) behind a run's ``args.json``: its
    own, or for a soup (``soup.py``) each source's that has one."""
    if "soup" in run_args:
        return [r["args"] for r in run_args["soup"] if isinstance(r.get("args"), dict)]
    return [run_args] if run_args else []


def load_run(run: Path) -> tuple[Generator | BandGenerator, Generator | BandGenerator, Critic, int]:
    """(raw generator, averaged generator, critic, step); the averaged one is
    the raw one for runs from before ``--ema``."""
    st = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    arch = st["arch"]

    def generator(weights: dict[str, torch.Tensor]) -> Generator | BandGenerator:
        G = build_generator(arch)
        G.load_state_dict(weights)
        return G.eval()

    D = build_critic(arch)
    D.load_state_dict(st["D"])
    return generator(st["G"]), generator(st.get("G_ema", st["G"])), D.eval(), int(st["step"])


def export_onnx(G: Generator | BandGenerator, path: Path, cfg: ModelConfig) -> None:
    t = 2 * G.time_multiple
    args = (torch.randn(1, 1, cfg.n_bins, t), torch.rand(1, 1, cfg.n_bins, t),
            torch.randn(1, cfg.z_channels, cfg.z_bins, t), torch.randn(1, 1, cfg.n_bins, t))
    dyn = {n: {0: "batch", 3: "frames"} for n in cfg.input_names + cfg.output_names}
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in torch 2.9+ and says so, with a tracer note on the band
        # generator's z rows; the dynamo exporter needs onnxscript (RESEARCH.md). The parity check below is
        # what tells whether the export is right.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(G, args, str(path), input_names=cfg.input_names, output_names=cfg.output_names,
                          dynamic_axes=dyn, opset_version=17, dynamo=False)


def parity(G: Generator | BandGenerator, path: Path, cfg: ModelConfig, frames: int = 96) -> float:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 1, cfg.n_bins, frames)) * 2 - 6).astype(np.float32)
    m = np.clip(rng.uniform(-1, 2, (2, 1, cfg.n_bins, frames)), 0, 1).astype(np.float32)
    z = rng.standard_normal((2, cfg.z_channels, cfg.z_bins, frames)).astype(np.float32)
    cp = (rng.standard_normal((2, 1, cfg.n_bins, frames)) * 2 - 6).astype(np.float32)
    with torch.no_grad():
        ref = G(*(torch.from_numpy(a) for a in (x, m, z, cp))).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, dict(zip(cfg.input_names, (x, m, z, cp), strict=True)))[0]
    return float(np.abs(out - ref).max())


def brighter_sign(G: Generator | BandGenerator, cfg: ModelConfig, frames: int = 64) -> float:
    """+1 if a larger value in z's file-wide channels (``cfg.z_global_channels``)
    makes ``G``'s restored band louder on average, -1 if quieter: the sidecar's
    ``z_global_brighter``, which orders the variants darker and brighter."""
    rng = np.random.default_rng(1)
    x = torch.from_numpy((rng.standard_normal((4, 1, cfg.n_bins, frames)) * 2 - 6).astype(np.float32))
    m = torch.zeros_like(x)
    m[:, :, 200:] = 1.0
    z = torch.from_numpy(rng.standard_normal((4, cfg.z_channels, cfg.z_bins, frames)).astype(np.float32))
    g = cfg.z_channels - cfg.z_global_channels
    levels = []
    for value in (-1.0, 1.0):
        z[:, g:] = value
        with torch.no_grad():
            levels.append(float((G(x, m, z, x) * m).sum() / m.sum()))
    return 1.0 if levels[1] >= levels[0] else -1.0


def parse_points(text: str, flag: str = "--extension-gain-db") -> list[list[float]]:
    """"8000:0,10000:-2.5" -> [[8000.0, 0.0], [10000.0, -2.5]]."""
    points = []
    for p in text.split(","):
        if p.strip():
            try:
                hz, db = (float(v) for v in p.split(":"))
            except ValueError as exc:
                raise SystemExit(f"{flag}: expected HZ:DB,..., got {p!r}") from exc
            points.append([hz, db])
    return points


def parse_hole_fill(text: str) -> tuple[int, float, list[float]]:
    """"96:30:9500:12500" -> (96 bins, 30 dB, [9500.0, 12500.0] Hz of cutoff)."""
    try:
        bins, db, lo, hi = text.split(":")
        return int(bins), float(db), [float(lo), float(hi)]
    except ValueError as exc:
        raise SystemExit(f"--hole-fill: expected BINS:DB:LO_HZ:HI_HZ, got {text!r}") from exc


def update_sidecar(onnx_path: Path, hole_fill: str | None, metrics: Path | None, status: str,
                   shelf: str | None = None, shelf_from: float | None = None) -> None:
    """The ``--update`` mode: the sidecar rewritten with the given settings only."""
    cfg = load_config(onnx_path)  # also checks that the sidecar belongs to this model
    if shelf is not None:
        cfg.extension_shelf_db = parse_points(shelf, "--extension-shelf-db")
    if shelf_from is not None:
        cfg.extension_shelf_from_hz = shelf_from
    if hole_fill is not None:
        cfg.hole_fill_bins, cfg.hole_fill_db, cfg.hole_fill_hz = parse_hole_fill(hole_fill)
    if metrics is not None:
        cfg.metrics = json.loads(metrics.read_text())
    if status:
        cfg.status = status
    sidecar = onnx_path.with_name(onnx_path.name + ".json")
    tmp = sidecar.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    tmp.replace(sidecar)
    print(f"updated {sidecar}")


def write_train_state(folder: Path, G_raw: Generator | BandGenerator, G: Generator | BandGenerator,
                      D: Critic, step: int, arch: dict) -> None:
    """The fp16 weights and ``state.json`` that ``train.py --init FOLDER`` goes on from."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in (("generator", G_raw), ("generator-ema", G), ("critic", D)):
        torch.save({k: v.half() for k, v in net.state_dict().items()}, folder / f"{name}.pt")
    arch = dict(arch, critic_base=D.convs[0].parametrizations.weight.original.shape[0], critic_kind=D.kind)
    (folder / "state.json").write_text(json.dumps({"step": step, "arch": arch}, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("runs/gan"))
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--name", default=DEFAULT_MODEL)
    ap.add_argument("--status", default="")
    ap.add_argument("--data", type=Path, default=None,
                    help="for the training-data summary (default: the run's own --data, else data/pairs)")
    ap.add_argument("--metrics", type=Path, help="JSON of measured metrics to put in the sidecar")
    ap.add_argument("--extension-gain-db", default="", metavar="HZ:DB,...",
                    help="level calibration of the restored band by cutoff, chosen on validation "
                         "(e.g. 8000:0,10000:-2.5); default none")
    ap.add_argument("--extension-shelf-db", default=None, metavar="HZ:DB,...",
                    help="gain of the restored band by frequency, on top of the calibration by cutoff, for "
                         "cutoffs from --extension-shelf-from on (e.g. 18750:0,19250:-40); default none")
    ap.add_argument("--extension-shelf-from", type=float, default=None, metavar="HZ",
                    help="the shelf applies to chunks whose cutoff is at least HZ (default 0: every chunk)")
    ap.add_argument("--hole-fill", default=None, metavar="BINS:DB:LO_HZ:HI_HZ",
                    help="fill the encoder's dropouts in the BINS under the cutoff where the MP3 is more than "
                         "DB below the model's restoration of them, before the band above is restored, for "
                         "cutoffs from LO_HZ to HI_HZ (ModelConfig.hole_fill_*); default off")
    ap.add_argument("--update", type=Path, metavar="ONNX",
                    help="rewrite only this exported model's sidecar (--hole-fill, --extension-shelf-db and -from, "
                         "--metrics, --status)")
    a = ap.parse_args()
    if a.update:
        update_sidecar(a.update, a.hole_fill, a.metrics, a.status, a.extension_shelf_db, a.extension_shelf_from)
        return
    if not (a.run / "last.pt").exists():
        raise SystemExit(f"error: no {a.run / 'last.pt'}: give --run a training run's folder (or a soup's)")
    G_raw, G, D, step = load_run(a.run)
    a.models.mkdir(parents=True, exist_ok=True)
    cfg = ModelConfig(name=a.name, time_multiple=G.time_multiple, z_bins=G.z_bins or ModelConfig().n_bins)
    path = a.models / f"{a.name}.onnx"
    export_onnx(G, path, cfg)
    err = parity(G, path, cfg)
    print(f"onnxruntime vs torch: max abs difference {err:.2e}")
    if err > 1e-3:
        raise SystemExit("export parity check failed")
    args_file = a.run / "args.json"
    run_args = json.loads(args_file.read_text()) if args_file.exists() else {}
    recipes = source_recipes(run_args)
    data_dir = a.data or next((Path(r["data"]) for r in recipes if r.get("data")), Path("data/pairs"))
    splits = data_dir / "splits.json"
    data = json.loads(splits.read_text())["summary"] if splits.exists() else {}
    cfg.training = {
        "steps": step,
        "arch": G.arch(),
        "params": sum(p.numel() for p in G.parameters()),
        "args": run_args,
        "data": {"hours": data.get("hours"), "pairs": data.get("pairs"), "seed": data.get("seed")},
        "onnx_parity_max_abs": err,
    }
    # a run trained with --level-z holds z's last channel over each crop: the runtime must too
    # (a soup of such runs too: its args.json lists its sources' recipes)
    cfg.z_global_channels = 1 if any(float(r.get("level_z", 0) or 0) > 0 for r in recipes) else 0
    if cfg.z_global_channels:
        cfg.z_global_brighter = brighter_sign(G, cfg)
    cfg.metrics = json.loads(a.metrics.read_text()) if a.metrics else {}
    cfg.extension_gain_db = parse_points(a.extension_gain_db)
    cfg.extension_shelf_db = parse_points(a.extension_shelf_db or "", "--extension-shelf-db")
    cfg.extension_shelf_from_hz = a.extension_shelf_from or 0.0
    if a.hole_fill is not None:
        cfg.hole_fill_bins, cfg.hole_fill_db, cfg.hole_fill_hz = parse_hole_fill(a.hole_fill)
    cfg.status = a.status or f"checkpoint at step {step}"
    cfg.sha256 = sha256_of(path)
    path.with_name(path.name + ".json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    # the shipped model's state is models/train-state (what --init starts from); another
    # name's goes beside it, so exporting a candidate into models/ cannot replace it
    state = a.models / ("train-state" if a.name == DEFAULT_MODEL else f"{a.name}-train-state")
    write_train_state(state, G_raw, G, D, step, cfg.training["arch"])
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {state}")


if __name__ == "__main__":
    main()
