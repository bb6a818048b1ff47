"""How much each band moves ViSQOL's score: the table behind ``losses.VISQOL_GRADIENT``.

    python benchmarks/visqol_weights.py [--split val] [--tracks 9] [--excerpts 1] [--seconds 8] [--model PATH]

ViSQOL (audio mode) scores a pair by one number per gammatone band, the mean
NSIM over time of that band ("fvnsim", 32 bands from 50 Hz to 24 kHz), mapped
to a score by an RBF support-vector regression bundled with ``visqol-python``.
This reads that regression from the package, checks that it is linear over
the feature vectors real restorations get (the score difference between
mp3fix and band copy against its first-order estimate), and prints, per band,
the regression's gradient (mean and spread over the MP3, band copy and mp3fix
of each excerpt) next to each system's mean fvnsim, and which bands make up
mp3fix's score minus band copy's (gradient times fvnsim difference).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import band_copy  # noqa: E402
from quality import SR, Visqol, excerpts, mp3_twin, setting  # noqa: E402
from splits import read_splits  # noqa: E402

from mp3fix.restore import Restorer  # noqa: E402

CENTRES_HZ = (50, 92, 140, 195, 258, 331, 415, 512, 622, 750, 896, 1065, 1259, 1481, 1737, 2032, 2370, 2760,
              3207, 3721, 4313, 4993, 5775, 6673, 7707, 8895, 10261, 11832, 13637, 15714, 18100, 20845)


class Svr:
    """The RBF support-vector regression of ViSQOL's audio mode, read from its libsvm file."""

    def __init__(self) -> None:
        import visqol

        path = Path(visqol.__file__).parent / "model" / "libsvm_nu_svr_model.txt"
        lines = path.read_text().splitlines()
        i = lines.index("SV")
        head = dict(line.split(" ", 1) for line in lines[:i])
        self.gamma, self.rho = float(head["gamma"]), float(head["rho"])
        coef, sv = [], []
        for line in lines[i + 1 :]:
            if not line.strip():
                continue
            a, *kv = line.split()
            v = np.zeros(32)
            for item in kv:
                k, x = item.split(":")
                v[int(k) - 1] = float(x)
            coef.append(float(a))
            sv.append(v)
        self.coef, self.sv = np.array(coef), np.array(sv)

    def _k(self, x: np.ndarray) -> np.ndarray:
        return np.exp(-self.gamma * ((self.sv - x) ** 2).sum(axis=1))

    def score(self, x: np.ndarray) -> float:
        return float(self.coef @ self._k(x) - self.rho)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return (self.coef * self._k(x)) @ (-2.0 * self.gamma * (x - self.sv))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pairs"))
    ap.add_argument("--split", default="val", choices=["train", "val", "test"])
    ap.add_argument("--tracks", type=int, default=9)
    ap.add_argument("--excerpts", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--kbps", default="16,32,64")
    ap.add_argument("--model", default=None)
    a = ap.parse_args()
    tracks = read_splits(a.data)[a.split][: a.tracks]
    restorer, vq, svr = Restorer(a.model, device="cpu"), Visqol(), Svr()
    systems = ("MP3", "band copy", "mp3fix")
    fv: dict[str, list[np.ndarray]] = {s: [] for s in systems}
    check = []
    for i, path in enumerate(tracks):
        for ref in excerpts(path, a.seconds, a.excerpts):
            for kb in (int(k) for k in a.kbps.split(",")):
                dec, r = mp3_twin(ref, setting(kb))
                rm = resample_poly(r.mean(axis=0), 160, 147).astype(np.float64)
                for name, y in zip(systems, (dec, band_copy(dec), restorer.restore(dec, SR, seed=0)[0]), strict=True):
                    ym = resample_poly(y.mean(axis=0), 160, 147).astype(np.float64)
                    res = vq.api.measure_from_arrays(rm, ym, 48000)
                    f = np.asarray(res.fvnsim, dtype=np.float64)
                    if abs(svr.score(f) - res.moslqo) > 1e-3 and 1.0 < res.moslqo < 5.0:
                        raise SystemExit("the regression read from the package does not reproduce ViSQOL's score")
                    fv[name].append(f)
                a_, b_ = fv["mp3fix"][-1], fv["band copy"][-1]
                check.append((svr.score(a_) - svr.score(b_), svr.gradient((a_ + b_) / 2) @ (a_ - b_)))
        print(f"track {i + 1}/{len(tracks)} done", file=sys.stderr, flush=True)

    grads = np.array([svr.gradient(f) for s in systems for f in fv[s]])
    mean = {s: np.mean(fv[s], axis=0) for s in systems}
    check = np.array(check)
    print(f"\n{len(tracks)} {a.split} tracks x {a.excerpts} x {a.seconds:g} s at {a.kbps} kbit/s "
          f"({len(check)} cases)")
    print(f"linear? mp3fix minus band copy, score against gradient x fvnsim difference: "
          f"mean |error| {np.abs(check[:, 0] - check[:, 1]).mean():.4f}, "
          f"correlation {np.corrcoef(check.T)[0, 1]:.5f}\n")
    print("| band | centre Hz | gradient (sd) | fvnsim MP3 | band copy | mp3fix | mp3fix - band copy, in score |")
    print("|---|---|---|---|---|---|---|")
    g = grads.mean(axis=0)
    for k in range(32):
        print(f"| {k} | {CENTRES_HZ[k]} | {g[k]:+.3f} ({grads[:, k].std():.3f}) | {mean['MP3'][k]:.3f} | "
              f"{mean['band copy'][k]:.3f} | {mean['mp3fix'][k]:.3f} | "
              f"{g[k] * (mean['mp3fix'][k] - mean['band copy'][k]):+.4f} |")
    print("\ngradient, for losses.VISQOL_GRADIENT: " + ", ".join(f"{v:.3f}" for v in g))


if __name__ == "__main__":
    main()
