"""Which tracks a benchmark measures: the split lists of the data set command.

``python -m mp3fix.train.dataset --out data`` writes ``data/pairs/splits.json``;
every benchmark reads its tracks from there, through ``read_splits``, which
says in one line what to run when the data set is not built yet, and finds
the tracks from any folder the benchmark is run in.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_splits(data: Path) -> dict[str, list[str]]:
    """``{"test": [...], "val": [...], "train": [...], ...}`` from ``data/splits.json``;
    SystemExit with one line when it is missing (a fresh clone)."""
    path = Path(data) / "splits.json"
    if not path.exists():
        raise SystemExit(f"error: no {path}: build the data set first (python -m mp3fix.train.dataset --out "
                         f"{Path(data).parent}), or give --data")
    splits = json.loads(path.read_text())["splits"]
    # the paths are as the data set command was given them (data/music/...), relative to the folder
    # it ran in: from another folder, read them beside the data set (data/pairs -> data/..)
    home = Path(data).resolve().parent.parent
    return {name: [t if Path(t).is_absolute() or Path(t).exists() or not (home / t).exists() else str(home / t)
                   for t in tracks] for name, tracks in splits.items()}
