"""Tests for mp3fix.batch: finding inputs, naming outputs, conflicts. No model runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mp3fix.batch import PlanError, find_audio_files, highs_label, plan_jobs, take_paths, variant_paths
from mp3fix.errors import Mp3fixError, OutputError


def touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def outputs(jobs) -> list[list[Path]]:
    return [j.outputs for j in jobs]


def test_single_file_default_name_beside_input(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    jobs = plan_jobs([song], None, None, 1, False)
    assert [j.src for j in jobs] == [song]
    assert outputs(jobs) == [[tmp_path / "song.restored.wav"]]
    assert not jobs[0].skipped


def test_single_file_format_flac(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    assert outputs(plan_jobs([song], None, "flac", 1, False)) == [[tmp_path / "song.restored.flac"]]


@pytest.mark.parametrize("name", ["out.wav", "out.flac", "OUT.FLAC", "deep/er/out.wav"])
def test_single_file_explicit_output_is_used_as_is(tmp_path: Path, name: str) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    assert outputs(plan_jobs([song], tmp_path / name, None, 1, False)) == [[tmp_path / name]]


def test_explicit_output_with_matching_format(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    assert outputs(plan_jobs([song], tmp_path / "o.flac", "flac", 1, False)) == [[tmp_path / "o.flac"]]


def test_format_conflicting_with_output_extension(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    with pytest.raises(PlanError, match="conflicts"):
        plan_jobs([song], tmp_path / "o.wav", "flac", 1, False)


@pytest.mark.parametrize("name", ["o.mp3", "o.ogg"])
def test_unknown_output_extension(tmp_path: Path, name: str) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    with pytest.raises(OutputError, match=r"\.wav or \.flac"):
        plan_jobs([song], tmp_path / name, None, 1, False)
    # a file of that name that exists is no folder to write into either
    touch(tmp_path / "o")
    with pytest.raises(OutputError, match=r"\.wav or \.flac"):
        plan_jobs([song], tmp_path / "o", None, 1, False)


def test_output_name_without_extension_is_a_new_folder(tmp_path: Path) -> None:
    # `-o out` or `-o out/` (the shell's trailing slash is gone by then) for one file
    song = tmp_path / "song.mp3"
    touch(song)
    [job] = plan_jobs([song], tmp_path / "out", None, 1, False)
    assert job.outputs == [tmp_path / "out" / "song.wav"]
    [job] = plan_jobs([song], tmp_path / "out", "flac", 2, False)
    assert job.outputs == [tmp_path / "out" / "song.v1.flac", tmp_path / "out" / "song.v2.flac"]


def test_unknown_format(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    with pytest.raises(PlanError, match="unknown format"):
        plan_jobs([song], None, "mp3", 1, False)


def test_single_file_into_existing_folder(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    out = tmp_path / "out"
    touch(song)
    out.mkdir()
    assert outputs(plan_jobs([song], out, "flac", 1, False)) == [[out / "song.flac"]]


def test_variant_naming(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    assert outputs(plan_jobs([song], None, None, 3, False)) == [[
        tmp_path / "song.restored.v1.wav", tmp_path / "song.restored.v2.wav", tmp_path / "song.restored.v3.wav",
    ]]
    assert outputs(plan_jobs([song], tmp_path / "x.flac", None, 2, False)) == [[
        tmp_path / "x.v1.flac", tmp_path / "x.v2.flac",
    ]]
    assert variant_paths(tmp_path / "a.wav", 1) == [tmp_path / "a.wav"]


def test_highs_levels_name_every_output_level_by_level(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    assert outputs(plan_jobs([song], None, None, 1, False, (-12.0, 0.0, 6.0))) == [[
        tmp_path / "song.restored.highs-12.wav", tmp_path / "song.restored.highs0.wav",
        tmp_path / "song.restored.highs+6.wav",
    ]]
    assert outputs(plan_jobs([song], tmp_path / "x.flac", None, 2, False, (-6.0, -4.5))) == [[
        tmp_path / "x.v1.highs-6.flac", tmp_path / "x.v2.highs-6.flac",
        tmp_path / "x.v1.highs-4.5.flac", tmp_path / "x.v2.highs-4.5.flac",
    ]]
    # one level keeps the plain name, whatever it is
    assert take_paths(tmp_path / "a.wav", 1, (-12.0,)) == [tmp_path / "a.wav"]
    assert [highs_label(d) for d in (-12.0, 0.0, -0.0, 6.0, 2.5)] == ["-12", "0", "0", "+6", "+2.5"]
    with pytest.raises(PlanError, match="-6 given twice"):
        plan_jobs([song], None, None, 1, False, (-6.0, 0.0, -6.0))
    with pytest.raises(PlanError, match="0 given twice"):
        plan_jobs([song], None, None, 1, False, (0.0, -0.0))


def test_variants_below_one_is_an_error(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    touch(song)
    with pytest.raises(PlanError, match="variants"):
        plan_jobs([song], None, None, 0, False)


def make_tree(root: Path) -> None:
    touch(
        root / "b.mp3",
        root / "A.MP3",
        root / "sub" / "c.m4a",
        root / "sub" / "deeper" / "d.Opus",
        root / "sub" / "e.flac",
        root / "notes.txt",
        root / "cover.jpg",
        root / ".hidden.mp3",
        root / ".cache" / "f.mp3",
    )


def test_folder_is_walked_recursively_case_insensitive_and_sorted(tmp_path: Path) -> None:
    music = tmp_path / "music"
    make_tree(music)
    found = find_audio_files(music)
    assert [p.relative_to(music).as_posix() for p in found] == [
        "A.MP3", "b.mp3", "sub/c.m4a", "sub/e.flac", "sub/deeper/d.Opus",
    ]


def test_folder_mirrors_tree_under_output(tmp_path: Path) -> None:
    music, out = tmp_path / "music", tmp_path / "out"
    make_tree(music)
    jobs = plan_jobs([music], out, None, 1, False)
    srcs = [j.src.relative_to(music).as_posix() for j in jobs]
    assert srcs == sorted(srcs)
    got = {j.src.relative_to(music).as_posix(): [o.relative_to(out).as_posix() for o in j.outputs] for j in jobs}
    assert got == {
        "A.MP3": ["A.wav"],
        "b.mp3": ["b.wav"],
        "sub/c.m4a": ["sub/c.wav"],
        "sub/e.flac": ["sub/e.wav"],
        "sub/deeper/d.Opus": ["sub/deeper/d.wav"],
    }


def test_folder_default_output_is_sibling_folder(tmp_path: Path) -> None:
    music = tmp_path / "music"
    touch(music / "x" / "a.mp3")
    jobs = plan_jobs([music], None, "flac", 2, False)
    assert outputs(jobs) == [[
        tmp_path / "music_restored" / "x" / "a.v1.flac", tmp_path / "music_restored" / "x" / "a.v2.flac",
    ]]


def test_output_folder_inside_input_is_not_walked(tmp_path: Path) -> None:
    music = tmp_path / "music"
    touch(music / "a.mp3", music / "restored" / "a.wav")
    jobs = plan_jobs([music], music / "restored", None, 1, False)
    assert [j.src for j in jobs] == [music / "a.mp3"]


def test_folder_output_must_not_be_a_file(tmp_path: Path) -> None:
    music = tmp_path / "music"
    touch(music / "a.mp3", tmp_path / "existing")
    with pytest.raises(PlanError, match="must be a folder"):
        plan_jobs([music], tmp_path / "existing", None, 1, False)
    with pytest.raises(PlanError, match="must be a folder"):
        plan_jobs([music], tmp_path / "new.wav", None, 1, False)


def test_several_inputs(tmp_path: Path) -> None:
    a, b, album = tmp_path / "a.mp3", tmp_path / "x" / "b.ogg", tmp_path / "album"
    touch(a, b, album / "t1.mp3")
    out = tmp_path / "out"
    jobs = plan_jobs([b, album, a], out, None, 1, False)
    assert [(j.src, j.outputs) for j in jobs] == sorted([
        (a, [out / "a.wav"]),
        (b, [out / "b.wav"]),
        (album / "t1.mp3", [out / "album" / "t1.wav"]),
    ], key=lambda t: str(t[0]))
    # without -o every output sits beside its own input
    assert {j.src: j.outputs for j in plan_jobs([a, b], None, None, 1, False)} == {
        a: [tmp_path / "a.restored.wav"], b: [tmp_path / "x" / "b.restored.wav"],
    }
    with pytest.raises(PlanError, match="must be a folder"):
        plan_jobs([a, b], tmp_path / "one.wav", None, 1, False)


def test_same_file_twice_is_one_job(tmp_path: Path) -> None:
    music = tmp_path / "music"
    touch(music / "a.mp3")
    jobs = plan_jobs([music / "a.mp3", music / "a.mp3"], tmp_path / "out", None, 1, False)
    assert len(jobs) == 1


def test_two_inputs_same_output_fail_those_files_only(tmp_path: Path) -> None:
    music = tmp_path / "music"
    touch(music / "song.mp3", music / "song.m4a", music / "other.mp3")
    jobs = plan_jobs([music], tmp_path / "out", None, 1, False)
    errors = {j.src.name: j.error for j in jobs}
    assert errors["other.mp3"] == ""  # the rest of the library goes on
    for name in ("song.mp3", "song.m4a"):  # neither wins: which one would is arbitrary
        assert "would both be written to" in errors[name] and str(tmp_path / "out" / "song.wav") in errors[name]
    # --skip-existing does not hide the conflict behind an existing output
    touch(tmp_path / "out" / "song.wav")
    jobs = plan_jobs([music], tmp_path / "out", None, 1, True)
    assert [(j.src.name, j.skipped, bool(j.error)) for j in jobs] == [
        ("other.mp3", False, False), ("song.m4a", False, True), ("song.mp3", False, True)]


def test_output_equal_to_input_is_an_error(tmp_path: Path) -> None:
    song = tmp_path / "song.wav"
    touch(song)
    with pytest.raises(PlanError, match="overwrite the input"):  # one file: the whole command fails
        plan_jobs([song], song, None, 1, False)
    # a folder restored into itself would overwrite its own .wav files: that file fails
    music = tmp_path / "music"
    touch(music / "a.mp3", music / "b.wav", music / "c.mp3")
    jobs = plan_jobs([music], music, None, 1, False)
    errors = {j.src.name: j.error for j in jobs}
    assert "output would overwrite the input" in errors["b.wav"]
    assert errors["a.mp3"] == errors["c.mp3"] == ""


def test_folder_scan_leaves_out_own_outputs(tmp_path: Path) -> None:
    # restoring a folder into itself twice: the first run's a.wav is no input of the second
    music = tmp_path / "music"
    touch(music / "a.mp3", music / "a.wav", music / "mine.wav", music / "sub" / "b.flac")
    ours = {music / "a.wav", music / "sub" / "b.flac"}
    jobs = plan_jobs([music], music, None, 1, True, own_output=lambda p: p in ours)
    assert sorted(j.src.name for j in jobs) == ["a.mp3", "mine.wav"]
    assert {j.src.name: j.skipped for j in jobs} == {"a.mp3": True, "mine.wav": False}
    assert "overwrite the input" in next(j for j in jobs if j.src.name == "mine.wav").error
    # a file given by name is restored whatever wrote it
    [job] = plan_jobs([music / "a.wav"], tmp_path / "x.wav", None, 1, False, own_output=lambda p: True)
    assert job.src == music / "a.wav" and not job.error


@pytest.mark.parametrize("make", ["missing", "empty_folder"])
def test_bad_inputs(tmp_path: Path, make: str) -> None:
    target = tmp_path / "thing"
    if make == "empty_folder":
        touch(target / "readme.txt")
    with pytest.raises(PlanError) as info:
        plan_jobs([target], None, None, 1, False)
    assert isinstance(info.value, Mp3fixError)
    assert str(target) in str(info.value)


def test_skip_existing_marks_but_keeps_jobs(tmp_path: Path) -> None:
    music = tmp_path / "music"
    out = tmp_path / "out"
    touch(music / "a.mp3", music / "b.mp3", music / "c.mp3")
    touch(out / "a.v1.wav", out / "a.v2.wav", out / "b.v1.wav")  # b is only half done
    jobs = plan_jobs([music], out, None, 2, True)
    assert [(j.src.name, j.skipped) for j in jobs] == [("a.mp3", True), ("b.mp3", False), ("c.mp3", False)]
    assert not any(j.skipped for j in plan_jobs([music], out, None, 2, False))
