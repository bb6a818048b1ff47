"""What a listener's ``--highs`` can give: the held-out table at several levels
of the restored band, and one level chosen per file.

    for db in 0 -6 -12 -18 -24; do
        python benchmarks/quality.py --excerpts 3 --highs $db --json q$db.json
    done
    python benchmarks/highs.py q0.json q-6.json q-12.json q-18.json q-24.json

Each file is a ``quality.py --json`` run, which records its ``--highs`` (the
same tracks, excerpts and bitrates in every file; the first is the default). Prints, per level and
bitrate: mp3fix's ViSQOL, its margin over band copy (per track, standard
error over tracks), its LSD, the cases (excerpt x bitrate) more than 0.1
ViSQOL below the MP3, and the files (track x bitrate, what a user restores)
whose mean over their excerpts is more than 0.1 below the MP3's. The last row takes, for each file (track and bitrate),
the level that scores best on that file's excerpts: an upper bound on what
choosing by ear can give, since it is chosen with the original in hand.
Model card item 22.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

Key = tuple[str, int, int]  # track, excerpt, kbit/s
BELOW = 0.1  # "worse than the MP3": more than this much ViSQOL below it


def load(path: Path) -> dict[Key, dict]:
    return {(r["track"], r["excerpt"], r["kbps"]): r for r in json.loads(path.read_text())["rows"]}


def per_file_best(runs: dict[str, dict[Key, dict]]) -> dict[tuple[str, int], str]:
    """The level (a key of ``runs``) whose mp3fix ViSQOL, averaged over a
    file's excerpts, is highest, for each file (track, kbit/s); ties go to the
    level named first."""
    first = next(iter(runs.values()))
    files: dict[tuple[str, int], list[Key]] = defaultdict(list)
    for k in first:
        files[(k[0], k[2])].append(k)
    return {f: max(runs, key=lambda n: float(np.mean([runs[n][k]["visqol"]["mp3fix"] for k in ks])))
            for f, ks in files.items()}


def summary(rows: list[dict]) -> dict[str, float]:
    """mp3fix's mean ViSQOL and LSD, its margin over band copy per track (mean,
    standard error), the cases more than ``BELOW`` under the MP3 and the files
    (track, bitrate) whose mean over their excerpts is."""
    per: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        per[r["track"]].append(r["visqol"]["mp3fix"] - r["visqol"]["band copy"])
    d = np.array([np.mean(v) for v in per.values()])
    by_file: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in rows:
        by_file[(r["track"], r["kbps"])].append(r["visqol"]["mp3fix"] - r["visqol"]["mp3"])
    return {
        "visqol": float(np.mean([r["visqol"]["mp3fix"] for r in rows])),
        "lsd": float(np.mean([r["lsd"]["mp3fix"] for r in rows])),
        "margin": float(d.mean()),
        "se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan"),
        "below": sum(r["visqol"]["mp3fix"] < r["visqol"]["mp3"] - BELOW for r in rows),
        "files_below": sum(float(np.mean(v)) < -BELOW for v in by_file.values()),
        "files": len(by_file),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, metavar="FILE", help="a quality.py --json run")
    a = ap.parse_args()
    runs: dict[str, dict[Key, dict]] = {}
    for path in a.runs:
        db = json.loads(path.read_text()).get("highs", 0.0)
        runs[f"{db:g}"] = load(path)
    if len(runs) < len(a.runs):
        raise SystemExit("two runs with the same --highs")
    keys = set(next(iter(runs.values())))
    if any(set(r) != keys for r in runs.values()):
        raise SystemExit("the runs do not hold the same tracks, excerpts and bitrates")
    best = per_file_best(runs)
    chosen = {k: runs[best[(k[0], k[2])]][k] for k in keys}
    print("| --highs | kbit/s | ViSQOL | over band copy (se) | LSD dB | cases > 0.1 below the MP3 "
          "| files > 0.1 below the MP3 |")
    print("|---|---|---|---|---|---|---|")
    for name, table in [*runs.items(), ("best per file", chosen)]:
        for kb in sorted({k[2] for k in keys}):
            s = summary([table[k] for k in sorted(keys) if k[2] == kb])
            print(f"| {name} | {kb} | {s['visqol']:.3f} | {s['margin']:+.3f} ({s['se']:.3f}) | {s['lsd']:.2f} "
                  f"| {s['below']} | {s['files_below']} of {s['files']} |")
    print("\nchosen per file (where not the first level):")
    for (track, kb), db in sorted(best.items()):
        if db != next(iter(runs)):
            print(f"  {track} at {kb} kbit/s: {db}")


if __name__ == "__main__":
    main()
