"""Average the averaged generators of several runs (a "model soup").

    python -m mp3fix.train.soup --out runs/soup models/train-state runs/a runs/b [--weights 2,1,1]

Fine-tuning runs that start from the same weights with different recipes each
land a little way from it in a different direction; the mean of their
weights (Wortsman et al., "Model soups", 2022) can score better than any one
of them at no cost at run time. Each source is a run folder (its ``last.pt``,
averaged generator) or a train-state folder (``generator-ema.pt``, as
``export.py`` writes it); all must have the same architecture. Writes
``OUT/last.pt`` with the mean as both the raw and the averaged generator, the
first source's critic and the highest step, and ``OUT/args.json`` (each
source's recipe and step, the weights), which ``export.py --run OUT``
exports like any run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


class SoupError(ValueError):
    """Sources that cannot be averaged (missing, or of different architectures)."""


def _fp32(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


def load_source(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict, int]:
    """(averaged generator's weights in fp32, critic's weights or None, arch, step) of a run or train-state folder."""
    if (folder / "last.pt").exists():
        st = torch.load(folder / "last.pt", map_location="cpu", weights_only=False)
        return _fp32(st.get("G_ema", st["G"])), st.get("D"), st["arch"], int(st["step"])
    if (folder / "generator-ema.pt").exists():
        state = json.loads((folder / "state.json").read_text())
        critic = folder / "critic.pt"
        D = _fp32(torch.load(critic, map_location="cpu")) if critic.exists() else None
        return _fp32(torch.load(folder / "generator-ema.pt", map_location="cpu")), D, state["arch"], int(state["step"])
    raise SoupError(f"{folder}: neither a run (last.pt) nor a train-state folder (generator-ema.pt)")


def generator_arch(arch: dict) -> dict:
    """The entries of a checkpoint's ``arch`` that describe the generator (not its critic)."""
    return {k: v for k, v in arch.items() if not k.startswith("critic")}


def average(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """Weighted mean of floating-point tensors; other tensors (indices) must agree and are kept."""
    if len(states) != len(weights) or not states:
        raise SoupError("one weight per source, and at least one source")
    keys = set(states[0])
    if any(set(s) != keys for s in states[1:]):
        raise SoupError("the sources' generators have different parameters")
    total = float(sum(weights))
    out = {}
    for k, v0 in states[0].items():
        if v0.is_floating_point():
            out[k] = sum(w * s[k] for w, s in zip(weights, states, strict=True)) / total
        else:
            if any(not torch.equal(s[k], v0) for s in states[1:]):
                raise SoupError(f"non-float tensor {k} differs between sources")
            out[k] = v0.clone()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", type=Path, nargs="+", help="run folders or train-state folders")
    ap.add_argument("--out", type=Path, required=True, help="folder for last.pt (export.py --run OUT)")
    ap.add_argument("--weights", default=None, help="comma-separated weights, one per source (default: equal)")
    a = ap.parse_args(argv)
    weights = [float(w) for w in a.weights.split(",")] if a.weights else [1.0] * len(a.sources)
    try:
        loaded = [load_source(s) for s in a.sources]
        for src, (_, _, arch, _) in zip(a.sources[1:], loaded[1:], strict=True):
            if generator_arch(arch) != generator_arch(loaded[0][2]):
                raise SoupError(f"{src}: architecture {arch} differs from {loaded[0][2]}")
        G = average([w for w, _, _, _ in loaded], weights)
    except SoupError as e:
        raise SystemExit(str(e)) from None
    # the critic (export.py loads one) with the architecture entry that describes it
    _, D, arch, _ = next((x for x in loaded if x[1] is not None), loaded[0])
    a.out.mkdir(parents=True, exist_ok=True)
    torch.save({"G": G, "G_ema": G, "D": D, "arch": arch, "step": max(s for *_, s in loaded)}, a.out / "last.pt")
    # what export.py puts in the sidecar's training summary: each source's recipe and step
    recipes = []
    for src, (*_, step) in zip(a.sources, loaded, strict=True):
        args = src / "args.json"
        recipes.append({"source": str(src), "step": step,
                        "args": json.loads(args.read_text()) if args.exists() else "train-state"})
    (a.out / "args.json").write_text(json.dumps({"soup": recipes, "weights": weights}, indent=1) + "\n")
    print(f"{a.out / 'last.pt'}: mean of {len(loaded)} generators (weights {weights})")


if __name__ == "__main__":
    main()
