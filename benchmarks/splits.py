"""Which tracks a benchmark measures: the split lists of the data set command.

``python -m mp3fix.train.dataset --out data`` writes ``data/pairs/splits.json``;
every benchmark reads its tracks from there, through ``read_splits``, which
says in one line what to run when the data set is not built yet.
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
    return json.loads(path.read_text())["splits"]
