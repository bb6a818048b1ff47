"""The built wheel ships the generator: install it away from the source tree and
find the model through the installed package (as silero-vad's CI does)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "mp3fix-gan.onnx"

# what the build needs; copied so the build leaves no build/ or egg-info in the checkout
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "mp3fix", "models"]

CHECK = """
import json, sys
from pathlib import Path
import mp3fix, mp3fix.model as m
target = Path(sys.argv[1]).resolve()
path = m.shipped_model_path()
cfg = m.load_config(path)  # checks the sidecar's checksum against the shipped file
print(json.dumps({
    "package": str(Path(mp3fix.__file__).resolve()),
    "model": str(path.resolve()),
    "exists": path.is_file(),
    "sidecar": path.with_name(path.name + ".json").is_file(),
    "resolved": str(m.resolve_model(None).resolve()),
    "name": cfg.name,
    "inside": path.resolve().is_relative_to(target),
}))
"""


def _can_build_offline() -> bool:
    """True when this environment has the build backend pyproject asks for
    (setuptools>=68 and wheel), so the build needs no index access."""
    try:
        import setuptools
    except ImportError:
        return False
    major = int(setuptools.__version__.split(".")[0])
    return major >= 68 and importlib.util.find_spec("wheel") is not None


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_installed_wheel_ships_the_model(tmp_path: Path) -> None:
    if not MODEL.is_file():
        pytest.skip(f"{MODEL.relative_to(ROOT)} is not in the checkout yet (it must be before a release)")
    assert MODEL.with_name(MODEL.name + ".json").is_file(), "the shipped model has no sidecar"

    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif p.is_file():
            shutil.copy2(p, src / name)
    dist, target, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # a fresh venv (.ci/run) has an old setuptools and no wheel: let pip fetch the backend then
    isolation = ["--no-build-isolation"] if _can_build_offline() else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(dist), str(src)],
         cwd=tmp_path)
    (wheel,) = dist.glob("mp3fix-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mp3fix/models/mp3fix-gan.onnx" in names
    assert "mp3fix/models/mp3fix-gan.onnx.json" in names
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", str(target),
          str(wheel)], cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(target)  # the installed copy only, never the checkout
    out = _run([sys.executable, "-c", CHECK, str(target)], cwd=elsewhere, env=env)
    facts = json.loads(out.strip().splitlines()[-1])
    assert Path(facts["package"]).is_relative_to(target.resolve()), facts
    assert facts["inside"] and facts["exists"] and facts["sidecar"], facts
    assert facts["resolved"] == facts["model"]
    assert not Path(facts["model"]).is_relative_to(ROOT), facts
    assert (target / "mp3fix" / "models" / "mp3fix-gan.onnx").read_bytes() == MODEL.read_bytes()
