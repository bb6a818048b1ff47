"""Batch planning and results: which inputs to restore, where each output goes.

This module owns finding audio files, naming outputs, skip-existing and the
per-file result record. It only looks at paths (never decodes, never loads a
model) and knows nothing of the CLI, so every rule here is unit-testable.

Naming rules (``plan_jobs``):

- one file and ``-o song.wav``: exactly that path; the format comes from the
  extension (``.wav`` or ``.flac``), and a ``--format`` that disagrees with it
  is an error. If ``-o`` names an existing folder, or a name with no
  extension that does not exist yet (``-o out``, made as a folder), the
  output goes inside it as ``NAME.wav``.
- one file, no ``-o``: beside the input as ``NAME.restored.wav`` (or ``.flac``
  with ``--format flac``).
- a folder: walked recursively for audio files (by extension, case-insensitive;
  hidden files and folders are skipped) and its tree mirrored under ``-o
  OUTFOLDER``, or under ``FOLDER_restored/`` beside it without ``-o``; each
  output is ``NAME.wav`` (or ``.flac``).
- several inputs: ``-o`` must be a folder (default: each output beside its own
  input, as above). Files go straight into it, each folder into a subfolder of
  its own name.
- ``variants`` N > 1: every output name gets a variant number before the
  extension, ``NAME.v1.wav`` ... ``NAME.vN.wav`` (``song.restored.v2.wav``,
  ``-o out.wav`` -> ``out.v1.wav``...); N = 1 keeps the plain name.
- several ``highs`` levels (decibels, as ``restore --highs``): every output
  name gets its level before the extension, after any variant number,
  ``NAME.highs-12.wav``, ``NAME.highs0.wav``, ``NAME.highs+6.wav``
  (``NAME.v2.highs-6.wav``); one level keeps the plain name. A job's outputs
  go level by level, each level's variants in order.

Errors (``PlanError``): a missing input, an input that is neither file nor
folder, nothing to restore, a highs level given twice. An output that is an
input, or two inputs that would write the same output (``a.mp3`` and
``a.m4a`` in one folder), fail those files only (``Job.error``), so that
the rest of a library is restored; with one input, it is a ``PlanError``.

Restoring a folder into itself (``-o`` the same folder) writes ``NAME.wav``
beside ``NAME.mp3``; a later run must not take those outputs for inputs. A
folder scan is given ``own_output`` (the CLI's: a WAV or FLAC whose
``software`` tag says mp3fix wrote it) and leaves such files out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mp3fix.audio import OUTPUT_FORMATS, output_format
from mp3fix.errors import PlanError

AUDIO_EXTENSIONS = frozenset({".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wav", ".flac", ".wma", ".mp2"})
FORMAT_EXTENSIONS = {fmt.lower(): ext for ext, fmt in OUTPUT_FORMATS.items()}  # {"wav": ".wav", "flac": ".flac"}
DEFAULT_FORMAT = "wav"
RESTORED_SUFFIX = ".restored"
FOLDER_SUFFIX = "_restored"

Status = Literal["ok", "skipped", "failed"]


@dataclass
class Job:
    """One input file and the outputs to write for it, one per variant."""

    src: Path
    outputs: list[Path]
    skipped: bool = False  # every output already exists and skip-existing was asked
    error: str = ""  # why this file cannot be restored as planned (its output is an input, ...)


@dataclass
class BatchResult:
    """What happened to one job, for the summary."""

    src: Path
    outputs: list[Path]
    status: Status
    message: str = ""
    seconds: float = 0.0  # audio duration restored
    wall: float = 0.0  # wall-clock seconds spent
    notes: list[str] = field(default_factory=list)


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def find_audio_files(folder: Path, exclude: Path | None = None,
                     own_output: Callable[[Path], bool] | None = None) -> list[Path]:
    """Audio files under ``folder``, recursively and sorted; hidden entries, the
    ``exclude`` folder (an output folder inside the input) and the files
    ``own_output`` says are mp3fix's own outputs are skipped."""
    excluded = exclude.resolve() if exclude is not None else None
    found: list[Path] = []

    def fail(exc: OSError) -> None:
        raise PlanError(f"{exc.filename or folder}: cannot read folder ({exc.strerror or exc})") from exc

    for root, dirs, files in os.walk(folder, onerror=fail):
        root_path = Path(root)
        dirs[:] = sorted(
            d for d in dirs
            if not _is_hidden(d) and (excluded is None or (root_path / d).resolve() != excluded)
        )
        found.extend(root_path / f for f in sorted(files) if not _is_hidden(f) and is_audio_file(Path(f)))
    if own_output is not None:
        found = [f for f in found if not own_output(f)]
    return found


def variant_paths(path: Path, variants: int) -> list[Path]:
    """``[path]`` for one variant, else ``NAME.v1.EXT`` ... ``NAME.vN.EXT``."""
    if variants == 1:
        return [path]
    return [path.with_name(f"{path.stem}.v{i}{path.suffix}") for i in range(1, variants + 1)]


def highs_label(db: float) -> str:
    """A highs level as output names carry it: ``-12``, ``0``, ``+6``, ``-4.5``."""
    return f"{db:+g}" if db else "0"


def take_paths(path: Path, variants: int, highs: Sequence[float] = ()) -> list[Path]:
    """Every output of one input: :func:`variant_paths`, and with more than one
    highs level each of those named per level (``NAME.v1.highs-6.EXT``), level
    by level."""
    paths = variant_paths(path, variants)
    if len(highs) <= 1:
        return paths
    return [p.with_name(f"{p.stem}.highs{highs_label(db)}{p.suffix}") for db in highs for p in paths]


def check_highs(highs: Sequence[float]) -> None:
    """Refuse a highs level given twice (two outputs of one name)."""
    labels = [highs_label(db) for db in highs]
    for label in labels:
        if labels.count(label) > 1:
            raise PlanError(f"--highs {label} given twice")


def _format_of_output_file(output: Path, fmt: str | None) -> str:
    ext_fmt = output_format(output).lower()  # OutputError for anything but .wav/.flac
    if fmt is not None and fmt != ext_fmt:
        raise PlanError(f"--format {fmt} conflicts with the output name {output} (.{ext_fmt})")
    return ext_fmt


def _check_format(fmt: str | None) -> str:
    if fmt is None:
        return DEFAULT_FORMAT
    if fmt not in FORMAT_EXTENSIONS:
        raise PlanError(f"unknown format {fmt!r} (choose {' or '.join(FORMAT_EXTENSIONS)})")
    return fmt


def _check_output_folder(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise PlanError(f"{output}: is a file; with several inputs or a folder, -o must be a folder")
    if not output.exists() and output.suffix.lower() in OUTPUT_FORMATS:
        raise PlanError(f"{output}: with several inputs or a folder, -o must be a folder, not a file name")


def _plan_targets(inputs: list[Path], output: Path | None, fmt: str | None,
                  own_output: Callable[[Path], bool] | None = None) -> list[tuple[Path, Path]]:
    """(source, output before variant naming) for every input file."""
    for p in inputs:
        if not p.exists():
            raise PlanError(f"{p}: no such file or folder")
        if not (p.is_file() or p.is_dir()):
            raise PlanError(f"{p}: not a regular file or folder")
    if not inputs:
        raise PlanError("no inputs given")

    single_file = len(inputs) == 1 and inputs[0].is_file()
    # -o NAME with no extension that does not exist yet (``-o out``, ``-o out/``): a folder to make
    if single_file and output is not None and not output.is_dir() and (output.suffix or output.exists()):
        src = inputs[0]
        _format_of_output_file(output, fmt)
        return [(src, output)]

    ext = FORMAT_EXTENSIONS[_check_format(fmt)]
    if output is not None:
        _check_output_folder(output)
    targets: list[tuple[Path, Path]] = []
    for p in inputs:
        if p.is_file():
            if output is None:
                targets.append((p, p.with_name(p.stem + RESTORED_SUFFIX + ext)))
            else:
                targets.append((p, output / (p.stem + ext)))
            continue
        if output is None:
            if p.name not in ("", ".", ".."):  # as the user wrote it, so the summary's paths read alike
                root = p.with_name(p.name + FOLDER_SUFFIX)
            else:
                name = p.resolve().name or "root"
                root = p.resolve().parent / (name + FOLDER_SUFFIX)
        elif len(inputs) == 1:
            root = output
        else:
            root = output / (p.resolve().name or "root")
        files = find_audio_files(p, exclude=root, own_output=own_output)
        if not files and len(inputs) == 1:
            raise PlanError(f"{p}: no audio files found (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")
        for f in files:
            rel = f.relative_to(p)
            targets.append((f, root / rel.parent / (rel.stem + ext)))
    if not targets:
        raise PlanError("no audio files found in " + ", ".join(str(p) for p in inputs))
    return targets


def _check_conflicts(jobs: list[Job]) -> None:
    """Mark (``Job.error``) every job whose output is an input, and both jobs of two
    that would write one output; with a single job, raise PlanError instead."""
    sources = {j.src.resolve(): j.src for j in jobs}
    seen: dict[Path, Job] = {}
    for job in jobs:
        for out in job.outputs:
            key = out.resolve()
            if key in sources:
                job.error = job.error or f"{out}: output would overwrite the input {sources[key]}"
            elif key in seen:
                message = f"{seen[key].src} and {job.src} would both be written to {out}"
                for j in (seen[key], job):
                    j.error = j.error or message
            else:
                seen[key] = job
    if len(jobs) == 1 and jobs[0].error:
        raise PlanError(jobs[0].error)


def plan_jobs(
    inputs: list[Path],
    output: Path | None,
    fmt: str | None,
    variants: int,
    skip_existing: bool,
    highs: Sequence[float] = (),
    own_output: Callable[[Path], bool] | None = None,
) -> list[Job]:
    """Plan one ``Job`` per input audio file, sorted by source path.

    ``inputs`` are files and/or folders; ``output`` is ``-o`` (a file name for a
    single file input, else a folder); ``fmt`` is ``"wav"``, ``"flac"`` or None
    (from the output name, else wav). With ``variants`` N > 1 each output becomes
    ``NAME.v1.EXT`` ... ``NAME.vN.EXT``; with several ``highs`` levels each
    gets its level (:func:`take_paths`). With ``skip_existing`` a job whose
    outputs all exist is kept but marked ``skipped`` (one with some of them
    writes the others). ``own_output``: a test for files mp3fix wrote, left
    out of folder scans. See the module docstring for every rule; raises
    ``PlanError`` (or ``OutputError`` for an output extension that is not
    .wav/.flac); a job that cannot be done as planned gets its ``error``.
    """
    if variants < 1:
        raise PlanError(f"variants must be at least 1, got {variants}")
    check_highs(highs)
    if fmt is not None:
        _check_format(fmt)
    targets = _plan_targets([Path(p) for p in inputs], None if output is None else Path(output), fmt, own_output)
    by_src: dict[Path, Job] = {}
    for src, out in targets:
        key = src.resolve()
        if key not in by_src:  # the same file given twice (or inside a given folder): once
            by_src[key] = Job(src, take_paths(out, variants, highs))
    jobs = sorted(by_src.values(), key=lambda j: str(j.src))
    _check_conflicts(jobs)
    if skip_existing:
        for job in jobs:
            job.skipped = not job.error and all(o.exists() for o in job.outputs)
    return jobs
