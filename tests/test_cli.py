"""End-to-end tests of the ``mp3fix`` CLI with the tiny test models.

Every user error must be one ``error:`` line on stderr, exit code 1, no
traceback and no output (or leftover ``.partial``) file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf
from typer.testing import CliRunner, Result

from mp3fix import __version__, audio
from mp3fix.cli import app

# No colour; run() sets a terminal width wide enough that table cells are not folded,
# error tests use a narrow one to prove error lines are never wrapped.
ENV = {"NO_COLOR": "1", "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
NARROW = 40


def run(*args: object, columns: int = 240) -> Result:
    """Invoke the CLI in-process; ``columns`` is the terminal width rich sees."""
    result = CliRunner(env={**ENV, "COLUMNS": str(columns)}).invoke(app, [str(a) for a in args])
    # anything but a clean exit is a bug in the CLI
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def assert_one_error_line(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for f in fragments:
        assert f in lines[0]
    return lines[0]


def files_in(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden ones included."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(path, always_2d=True, dtype="float32")
    return data.T, rate


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["stereo_mp3", "mono_mp3", "lowpass_wav"])
def test_restore_identity_reconstructs_input(request, copy_to, identity_model: Path, fixture: str) -> None:
    src = copy_to(request.getfixturevalue(fixture))
    before = sha256(src)
    result = run("restore", src, "--model", identity_model)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    out = src.with_name(src.stem + ".restored.wav")
    assert files_in(src.parent) == sorted([src.name, out.name])
    assert "ok" in result.stdout and out.name in result.stdout and "1 restored" in result.stdout

    y, rate = read(out)
    x, info = audio.decode(src, 44100)
    assert rate == 44100
    assert sf.info(out).subtype == "FLOAT"
    assert y.shape == x.shape  # channels kept, length = decoded input length at 44.1 kHz
    assert y.shape[0] == (1 if fixture == "mono_mp3" else 2)
    snr = 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2))
    assert snr > 40.0
    assert sha256(src) == before  # the input is only read


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "name", "subtype"),
    [
        (["--format", "flac"], "song.restored.flac", "PCM_24"),
        (["--bit-depth", "16"], "song.restored.wav", "PCM_16"),
        (["--bit-depth", "24"], "song.restored.wav", "PCM_24"),
        (["--format", "flac", "--bit-depth", "16"], "song.restored.flac", "PCM_16"),
        (["-o", "OUT/x.flac"], "OUT/x.flac", "PCM_24"),
    ],
)
def test_format_and_bit_depth(copy_to, stereo_mp3: Path, identity_model: Path, args, name, subtype) -> None:
    src = copy_to(stereo_mp3, "song.mp3")
    args = [str(src.parent / a) if a.startswith("OUT/") else a for a in args]
    result = run("restore", src, "--model", identity_model, "-q", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # --quiet: no summary
    out = src.parent / name
    info = sf.info(out)
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        "FLAC" if name.endswith(".flac") else "WAV", subtype, 44100, 2)


def test_flac_float_is_refused_before_any_work(copy_to, stereo_mp3: Path) -> None:
    src = copy_to(stereo_mp3)
    # the model does not exist: the format error must come first
    result = run("restore", src, "--format", "flac", "--bit-depth", "float", "--model", "missing.onnx",
                 columns=NARROW)
    assert_one_error_line(result, "FLAC", "float")
    assert files_in(src.parent) == [src.name]


@pytest.mark.slow
def test_same_seed_same_output_other_seed_differs(tmp_path, stereo_mp3: Path, fill_model: Path) -> None:
    outs = [tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"]
    for out, seed in zip(outs, [7, 7, 8], strict=True):
        assert run("restore", stereo_mp3, "-o", out, "--seed", seed, "--model", fill_model, "-q").exit_code == 0
    # samples, not bytes: libsndfile stamps float WAVs with the time in a PEAK chunk
    a, b, c = (read(o)[0] for o in outs)
    assert np.array_equal(a, b)
    assert a.shape == c.shape and not np.allclose(a, c, atol=1e-4)


@pytest.mark.slow
def test_default_seed_is_the_library_default(tmp_path, stereo_mp3: Path, fill_model: Path) -> None:
    from mp3fix.restore import DEFAULT_SEED

    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    assert run("restore", stereo_mp3, "-o", a, "--model", fill_model, "-q").exit_code == 0
    assert run("restore", stereo_mp3, "-o", b, "--seed", DEFAULT_SEED, "--model", fill_model, "-q").exit_code == 0
    assert np.array_equal(read(a)[0], read(b)[0])


@pytest.mark.slow
def test_variants_are_numbered_and_differ(copy_to, mono_mp3: Path, fill_model: Path) -> None:
    src = copy_to(mono_mp3, "song.mp3")
    result = run("restore", src, "--variants", 3, "--model", fill_model)
    assert result.exit_code == 0, result.output
    names = [f"song.restored.v{i}.wav" for i in (1, 2, 3)]
    assert files_in(src.parent) == sorted(["song.mp3", *names])
    audios = [read(src.parent / n)[0] for n in names]
    assert all(a.shape == audios[0].shape for a in audios)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.allclose(audios[i], audios[j], atol=1e-4)


def make_music_folder(root: Path, copy_to, stereo_mp3: Path, mono_mp3: Path, lowpass_wav: Path) -> None:
    copy_to(stereo_mp3, "a.mp3", root)
    copy_to(mono_mp3, "B.MP3", root / "sub")
    copy_to(lowpass_wav, "c.wav", root / "sub" / "deeper")
    (root / "notes.txt").write_text("not audio")


@pytest.mark.slow
def test_folder_mirrors_tree_then_skip_existing(tmp_path, copy_to, stereo_mp3, mono_mp3, lowpass_wav,
                                                identity_model) -> None:
    music, out = tmp_path / "music", tmp_path / "out"
    make_music_folder(music, copy_to, stereo_mp3, mono_mp3, lowpass_wav)
    result = run("restore", music, "-o", out, "--model", identity_model, "--format", "flac")
    assert result.exit_code == 0, result.output
    assert files_in(out) == ["a.flac", "sub/B.flac", "sub/deeper/c.flac"]
    assert read(out / "sub" / "B.flac")[0].shape[0] == 1
    assert "3 restored" in result.stdout
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}

    again = run("restore", music, "-o", out, "--model", identity_model, "--format", "flac", "--skip-existing")
    assert again.exit_code == 0, again.output
    assert again.stdout.count("skipped") >= 3
    assert "0 restored, 3 skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")} == mtimes

    # without --skip-existing or --overwrite, existing outputs are per-file errors
    clash = run("restore", music, "-o", out, "--model", identity_model, "--format", "flac")
    assert clash.exit_code == 1
    assert clash.stderr.count("error:") == 3 and "--overwrite" in clash.stderr
    forced = run("restore", music, "-o", out, "--model", identity_model, "--format", "flac", "--overwrite", "-q")
    assert forced.exit_code == 0, forced.output


def make_bad_input(kind: str, folder: Path, good_mp3: Path) -> Path:
    path = folder / f"{kind}.mp3"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(3).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("this is not an mp3\n" * 100)
    elif kind == "truncated":
        data = good_mp3.read_bytes()
        path.write_bytes(data[: len(data) // 2 + 7])  # cut in the middle of a frame
    else:
        raise ValueError(kind)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "says"), [
    ("empty", "empty"), ("random", ""), ("text", ""), ("truncated", "truncated"),
])
def test_bad_input_is_one_clean_error(tmp_path, stereo_mp3: Path, identity_model: Path, kind: str,
                                      says: str) -> None:
    src = make_bad_input(kind, tmp_path, stereo_mp3)
    out = tmp_path / "out"
    out.mkdir()
    result = run("restore", src, "-o", out / "x.wav", "--model", identity_model, columns=NARROW)
    assert_one_error_line(result, src.name, says)
    assert "Traceback" not in result.stdout
    assert "failed" in result.stdout  # the summary lists it
    assert files_in(out) == []


@pytest.mark.slow
def test_folder_with_one_bad_file(tmp_path, copy_to, stereo_mp3, mono_mp3, lowpass_wav, identity_model) -> None:
    music, out = tmp_path / "music", tmp_path / "out"
    make_music_folder(music, copy_to, stereo_mp3, mono_mp3, lowpass_wav)
    make_bad_input("truncated", music / "sub", stereo_mp3)
    result = run("restore", music, "-o", out, "--model", identity_model)
    assert result.exit_code == 1
    assert files_in(out) == ["a.wav", "sub/B.wav", "sub/deeper/c.wav"]  # no truncated.wav, no .partial
    assert result.stderr.count("error:") == 1 and "truncated.mp3" in result.stderr
    row = next(ln for ln in result.stdout.splitlines() if "truncated.mp3" in ln)
    assert "failed" in row
    assert "3 restored, 1 failed" in result.stdout


@pytest.mark.slow
def test_interrupt_exits_130_and_leaves_no_partial_files(tmp_path, stereo_mp3, identity_model, monkeypatch) -> None:
    writes = []

    def interrupted_write(self, block) -> None:
        writes.append(block.shape)
        raise KeyboardInterrupt

    monkeypatch.setattr(audio.AudioWriter, "write", interrupted_write)
    out = tmp_path / "out"
    result = run("restore", stereo_mp3, "-o", out / "x.wav", "--model", identity_model)
    assert writes  # it really was interrupted mid-file
    assert result.exit_code == 130
    assert result.stderr.splitlines() == ["error: interrupted"]
    assert files_in(out) == []


@pytest.mark.slow
def test_jobs_2_writes_the_same_as_jobs_1(tmp_path, copy_to, stereo_mp3, mono_mp3, lowpass_wav, fill_model) -> None:
    music = tmp_path / "music"
    make_music_folder(music, copy_to, stereo_mp3, mono_mp3, lowpass_wav)
    results = {}
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        results[jobs] = run("restore", music, "-o", out, "--model", fill_model, "--seed", 3, "--jobs", jobs)
        assert results[jobs].exit_code == 0, results[jobs].output
        assert results[jobs].stderr == ""
        assert files_in(out) == ["a.wav", "sub/B.wav", "sub/deeper/c.wav"]
    for name in files_in(tmp_path / "out1"):
        a, b = read(tmp_path / "out1" / name)[0], read(tmp_path / "out2" / name)[0]
        assert np.array_equal(a, b), name
    # the same summary, in the same (input) order
    rows = [[ln.split()[1] for ln in r.stdout.splitlines() if ".mp3" in ln or ".MP3" in ln or ".wav " in ln]
            for r in results.values()]
    assert rows[0] == rows[1] and len(rows[0]) == 3
    assert "3 restored" in results[2].stdout


@pytest.mark.slow
def test_jobs_2_with_one_bad_file(tmp_path, copy_to, stereo_mp3, mono_mp3, lowpass_wav, fill_model,
                                  monkeypatch) -> None:
    music, out = tmp_path / "music", tmp_path / "out"
    make_music_folder(music, copy_to, stereo_mp3, mono_mp3, lowpass_wav)
    make_bad_input("truncated", music / "sub", stereo_mp3)
    # two cores here, whatever the machine: --threads 2 for 2 jobs asks for more
    monkeypatch.setattr("mp3fix.runtime.default_threads", lambda: 2)
    result = run("restore", music, "-o", out, "--model", fill_model, "--jobs", 2, "--threads", 2)
    assert result.exit_code == 1
    assert files_in(out) == ["a.wav", "sub/B.wav", "sub/deeper/c.wav"]  # no truncated.wav, no .partial
    warning, error = result.stderr.splitlines()
    assert "--jobs 2 x --threads 2" in warning and "2 cores" in warning
    assert error.startswith("error: ") and "truncated.mp3" in error
    row = next(ln for ln in result.stdout.splitlines() if "truncated.mp3" in ln)
    assert "failed" in row
    assert "3 restored, 1 failed" in result.stdout


@pytest.mark.slow
def test_jobs_2_interrupt_exits_130_and_leaves_no_partial_files(tmp_path, copy_to, stereo_mp3, mono_mp3,
                                                                 lowpass_wav, fill_model, monkeypatch) -> None:
    from mp3fix import parallel

    music, out = tmp_path / "music", tmp_path / "out"
    make_music_folder(music, copy_to, stereo_mp3, mono_mp3, lowpass_wav)
    copy_to(stereo_mp3, "d.mp3", music)
    real_wait = parallel.wait
    waits = []

    def interrupted_wait(*args, **kwargs):  # Ctrl-C while the second file is awaited
        waits.append(1)
        if len(waits) == 2:
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(parallel, "wait", interrupted_wait)
    result = run("restore", music, "-o", out, "--model", fill_model, "--jobs", 2)
    assert result.exit_code == 130
    assert result.stderr.splitlines() == ["error: interrupted"]
    written = files_in(out) if out.exists() else []
    assert not [f for f in written if f.endswith(".partial")]
    # A file a worker finished before the interrupt reached it is kept, whole
    # (which ones finish first is a race); anything else was removed.
    import soundfile as sf

    for name in written:
        assert sf.info(str(out / name)).frames > 0


def test_cuda_fallback_notice_is_printed_once(tmp_path, copy_to, stereo_mp3, mono_mp3, lowpass_wav,
                                              identity_model, monkeypatch) -> None:
    from tests.helpers import fake_cuda_that_falls_back

    music = tmp_path / "music"
    copy_to(lowpass_wav, "a.wav", music)
    copy_to(lowpass_wav, "b.wav", music)
    fake_cuda_that_falls_back(monkeypatch)
    result = run("restore", music, "-o", tmp_path / "out", "--model", identity_model)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["CUDA is not usable here (onnxruntime fell back to CPU); running on CPU"]
    assert "2 restored" in result.stdout
    quiet = run("restore", music, "-o", tmp_path / "quiet", "--model", identity_model, "-q")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""
    explicit = run("restore", music, "-o", tmp_path / "cuda", "--model", identity_model, "--device", "cuda",
                   columns=NARROW)
    assert_one_error_line(explicit, "fell back to CPU")
    assert not (tmp_path / "cuda").exists()


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_device_cuda_without_cuda(copy_to, stereo_mp3: Path, identity_model: Path) -> None:
    src = copy_to(stereo_mp3)
    result = run("restore", src, "--device", "cuda", "--model", identity_model, columns=NARROW)
    assert_one_error_line(result, "pip install '.[gpu]'")
    assert files_in(src.parent) == [src.name]


def test_unknown_output_extension(tmp_path, stereo_mp3: Path, identity_model: Path) -> None:
    result = run("restore", stereo_mp3, "-o", tmp_path / "x.mp3", "--model", identity_model, columns=NARROW)
    assert_one_error_line(result, "x.mp3", ".wav or .flac")
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(("args", "says"), [
    (["MISSING.mp3"], "no such file"),
    (["SRC", "--model", "missing.onnx"], "model not found"),
    (["SRC", "--format", "flac", "-o", "OUT/x.wav"], "conflicts"),
    (["SRC", "--skip-existing", "--overwrite"], "--overwrite"),
    (["SRC", "SRC", "-o", "OUT/x.wav"], "must be a folder"),
])
def test_usage_errors_are_one_line(tmp_path, copy_to, stereo_mp3, identity_model, args, says) -> None:
    src = copy_to(stereo_mp3, "song.mp3", tmp_path / "in")
    subst = {"SRC": str(src), "MISSING.mp3": str(tmp_path / "missing.mp3")}
    args = [subst.get(a, a).replace("OUT/", str(tmp_path / "out") + "/") for a in args]
    if "--model" not in args:
        args += ["--model", str(identity_model)]
    assert_one_error_line(run("restore", *args, columns=NARROW), says)
    assert not (tmp_path / "out").exists()
    assert files_in(tmp_path / "in") == ["song.mp3"]


def test_info_shows_model_and_providers(identity_model: Path) -> None:
    result = run("info", "--model", identity_model)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (__version__, str(identity_model), "identity", "44100 Hz", "1024 / 512", "64 frames",
                     "CPUExecutionProvider", audio.ffmpeg_exe()):
        assert expected in out, expected


def test_info_shows_training_summary(tmp_path, identity_model: Path) -> None:
    model = tmp_path / "trained.onnx"
    shutil.copyfile(identity_model, model)
    sidecar = json.loads(identity_model.with_name("identity.onnx.json").read_text())
    sidecar["training"] = {"steps": 123457, "params": 98765}
    (tmp_path / "trained.onnx.json").write_text(json.dumps(sidecar))
    result = run("info", "--model", model)
    assert result.exit_code == 0, result.output
    assert "123457" in result.stdout and "98765" in result.stdout


def test_info_with_missing_model_still_reports_the_rest(tmp_path) -> None:
    result = run("info", "--model", tmp_path / "none.onnx")
    assert_one_error_line(result, "model not found")
    assert "CPUExecutionProvider" in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mp3fix {__version__}"


def test_no_arguments_shows_help() -> None:
    result = run()
    assert "restore" in result.output and "info" in result.output


def test_python_m_mp3fix_and_cheap_import() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, "-m", "mp3fix", "--version"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == f"mp3fix {__version__}"
    code = ("import sys, mp3fix; assert 'onnxruntime' not in sys.modules; "
            "from mp3fix import Restorer; print(Restorer.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "mp3fix.restore"


def test_source_band_caps_what_is_added(tmp_path, stereo_mp3: Path, fill_model: Path) -> None:
    # the 32 kbit/s MP3's cutoff is about 5.5 kHz; told that the recording ends at 8 kHz, nothing is added above
    from mp3fix import audio
    from tests.helpers import stft_mag

    free, capped = tmp_path / "free.wav", tmp_path / "capped.wav"
    assert run("restore", stereo_mp3, "-o", free, "--model", fill_model, "-q").exit_code == 0
    assert run("restore", stereo_mp3, "-o", capped, "--model", fill_model, "-q", "--source-band", 8000).exit_code == 0
    f, _ = audio.decode(free, 44100)
    c, _ = audio.decode(capped, 44100)
    top = slice(int(9000 / 44100 * 1024), 500)
    assert stft_mag(c)[..., top, 8:-8].mean() < 0.01 * stft_mag(f)[..., top, 8:-8].mean()
    refused = run("restore", stereo_mp3, "-o", tmp_path / "x.wav", "--model", fill_model, "--source-band", 500)
    assert refused.exit_code == 2 and "--source-band" in refused.output
    assert not (tmp_path / "x.wav").exists()


def test_highs_turns_the_restored_band_down(tmp_path, stereo_mp3: Path, fill_model: Path) -> None:
    from mp3fix import audio
    from tests.helpers import stft_mag

    free, dull = tmp_path / "free.wav", tmp_path / "dull.wav"
    assert run("restore", stereo_mp3, "-o", free, "--model", fill_model, "-q").exit_code == 0
    assert run("restore", stereo_mp3, "-o", dull, "--model", fill_model, "-q", "--highs", -20).exit_code == 0
    f, _ = audio.decode(free, 44100)
    d, _ = audio.decode(dull, 44100)
    top = slice(int(8000 / 44100 * 1024), 500)
    ratio = stft_mag(d)[..., top, 8:-8].mean() / stft_mag(f)[..., top, 8:-8].mean()
    assert 0.07 < ratio < 0.13  # -20 dB
    refused = run("restore", stereo_mp3, "-o", tmp_path / "x.wav", "--model", fill_model, "--highs", 30)
    assert refused.exit_code == 2 and "--highs" in refused.output
    assert not (tmp_path / "x.wav").exists()


def test_several_highs_levels_write_one_file_each(tmp_path, stereo_mp3: Path, fill_model: Path) -> None:
    from mp3fix import audio
    from tests.helpers import stft_mag

    result = run("restore", stereo_mp3, "-o", tmp_path / "out.wav", "--model", fill_model, "-q",
                 "--highs", -20, "--highs", 0)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("out*")) == ["out.highs-20.wav", "out.highs0.wav"]
    d, _ = audio.decode(tmp_path / "out.highs-20.wav", 44100)
    f, _ = audio.decode(tmp_path / "out.highs0.wav", 44100)
    top = slice(int(8000 / 44100 * 1024), 500)
    ratio = stft_mag(d)[..., top, 8:-8].mean() / stft_mag(f)[..., top, 8:-8].mean()
    assert 0.07 < ratio < 0.13  # -20 dB
    twice = run("restore", stereo_mp3, "-o", tmp_path / "y.wav", "--model", fill_model, "--highs", -6,
                "--highs", -6)
    assert twice.exit_code == 1 and "given twice" in twice.output and "Traceback" not in twice.output
    assert not list(tmp_path.glob("y*"))


def test_the_inputs_tags_go_to_every_output(tmp_path, lowpass_wav: Path, fill_model: Path) -> None:
    from tests.conftest import encode_mp3

    tags = {"title": "Ünïcode Title", "artist": "The Band", "album": "Best Of", "date": "1999",
            "genre": "Rock", "comment": "a=b; c"}
    meta = [x for k, v in tags.items() for x in ("-metadata", f"{k}={v}")]
    src = encode_mp3(lowpass_wav, tmp_path / "tagged.mp3", "-b:a", "32k", "-metadata", "track=3/12", *meta)
    result = run("restore", src, "-o", tmp_path / "out.flac", "--model", fill_model, "--variants", 2, "-q")
    assert result.exit_code == 0, result.output
    for out in ("out.v1.flac", "out.v2.flac"):
        with sf.SoundFile(tmp_path / out) as f:
            got = f.copy_metadata()
        assert {k: got.get(k) for k in tags} == tags and got["tracknumber"] == "3/12"
        assert got["software"].startswith(f"mp3fix {__version__}")


def test_keep_mp3_band_leaves_the_dropouts_under_the_cutoff(tmp_path, fill_model: Path) -> None:
    from mp3fix import audio
    from mp3fix.spectral import detect_cutoff
    from tests.conftest import RATE, encode_mp3, synth_signal
    from tests.helpers import stft_mag

    # noise in the mid, the chirp in the side: the side, restored as one channel, has the chirp's
    # empty bins under the cutoff for the filling to fill
    chirp, noise = synth_signal().T
    sf.write(tmp_path / "ms.wav", 0.5 * np.stack([noise + chirp, noise - chirp], axis=1), RATE, subtype="FLOAT")
    stereo_mp3 = encode_mp3(tmp_path / "ms.wav", tmp_path / "ms.mp3", "-ar", "16000", "-b:a", "32k")

    model = tmp_path / "fill.onnx"
    shutil.copy(fill_model, model)
    sidecar = json.loads(fill_model.with_name("fill.onnx.json").read_text())
    # fill.onnx restores at a fixed level far under the music's; +60 dB brings it near, so it fills
    sidecar.update(hole_fill_bins=48, hole_fill_db=30.0, hole_fill_hz=[0.0, 22050.0],
                   extension_gain_db=[[1000.0, 60.0]])
    (tmp_path / "fill.onnx.json").write_text(json.dumps(sidecar))
    filled, kept = tmp_path / "filled.wav", tmp_path / "kept.wav"
    assert run("restore", stereo_mp3, "-o", filled, "--model", model, "-q").exit_code == 0
    assert run("restore", stereo_mp3, "-o", kept, "--model", model, "-q", "--keep-mp3-band").exit_code == 0
    mp3 = stft_mag(audio.decode(stereo_mp3, 44100)[0])
    f, k = (stft_mag(audio.decode(p, 44100)[0]) for p in (filled, kept))
    cut = detect_cutoff(mp3[..., :512, :] ** 2)
    under = (..., slice(cut - 40, cut - 12), slice(8, -8))
    assert np.linalg.norm(k[under] - mp3[under]) < 1e-3 * np.linalg.norm(mp3[under])  # as the MP3 has it
    assert np.linalg.norm(f[under] - mp3[under]) > 0.05 * np.linalg.norm(mp3[under])  # its dropouts filled
    below = (..., slice(0, cut - 60), slice(8, -8))
    assert np.linalg.norm(f[below] - k[below]) < 1e-3 * np.linalg.norm(k[below])


# ------------------------------------------------ what a library throws at it (session 22's audit)


def run_script(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """The ``mp3fix`` console script (``cli.run``) in-process: (exit code, stdout, stderr)."""
    from mp3fix.cli import run as script

    with pytest.raises(SystemExit) as stop:
        script([str(a) for a in args])
    out, err = capsys.readouterr()
    return stop.value.code, out, err


@pytest.mark.parametrize(("args", "says"), [
    (["--foo"], "No such option: --foo"),
    (["--seed", "-1"], "--seed"),
    (["--format", "mp3"], "--format"),
    (["--highs", "nan"], "nan is not a level from -40 to +12 dB"),
    (["--highs", "30"], "30 is not a level"),
    (["--source-band", "inf"], "inf is not a frequency of 1000 Hz or more"),
    (["--source-band", "nan"], "nan is not a frequency"),
    (["--variants", "0"], "--variants"),
])
def test_bad_command_line_is_one_line_and_exit_2(capsys, stereo_mp3: Path, args, says) -> None:
    code, out, err = run_script(capsys, "restore", stereo_mp3, *args)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], err
    assert lines[0].endswith("(see mp3fix restore --help)")
    assert "Traceback" not in out + err


def test_console_script_missing_argument_unknown_command_and_help(capsys) -> None:
    code, _, err = run_script(capsys, "restore")
    assert code == 2 and err.startswith("error: Missing argument 'FILE_OR_FOLDER'") and err.count("\n") == 1
    code, _, err = run_script(capsys, "bogus")
    assert code == 2 and "No such command 'bogus'" in err and "(see mp3fix --help)" in err
    code, out, _ = run_script(capsys, "--version")
    assert code == 0 and out.strip() == f"mp3fix {__version__}"
    code, out, _ = run_script(capsys, "restore", "--help")
    assert code == 0
    for flag in ("--skip-existing", "--overwrite", "--quiet", "--keep-mp3-band", "--ignore-bitrate"):
        line = next(ln for ln in out.splitlines() if flag in ln)
        assert "<bool>" not in line  # a flag takes no value


def test_disk_full_fails_that_file_and_the_batch_goes_on(tmp_path, copy_to, stereo_mp3, mono_mp3,
                                                          identity_model, monkeypatch) -> None:
    music, out = tmp_path / "music", tmp_path / "out"
    copy_to(stereo_mp3, "a.mp3", music)
    copy_to(mono_mp3, "b.mp3", music)
    real_write, real_usage = sf.SoundFile.write, shutil.disk_usage

    def write(self, data):  # the first output's disk fills up
        if Path(self.name).name.startswith(".a."):
            raise sf.SoundFileRuntimeError("System error.")
        return real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", write)
    monkeypatch.setattr(audio.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=0))
    result = run("restore", music, "-o", out, "--model", identity_model)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: {out / 'a.wav'}: no space left on the device"]
    assert "1 restored, 1 failed" in result.stdout
    assert files_in(out) == ["b.wav"]  # no partial a.wav, hidden or not


@pytest.mark.parametrize("signum", [15, 1])  # SIGTERM, SIGHUP
def test_terminate_leaves_no_partial_files(tmp_path, stereo_mp3, identity_model, monkeypatch, signum) -> None:
    import signal

    def killed_write(self, block) -> None:
        os.kill(os.getpid(), signum)  # what `kill` or a closed terminal does mid-file

    monkeypatch.setattr(audio.AudioWriter, "write", killed_write)
    handler = signal.getsignal(signum)
    out = tmp_path / "out"
    result = run("restore", stereo_mp3, "-o", out / "x.wav", "--model", identity_model)
    assert result.exit_code == 128 + signum
    assert result.stderr.splitlines() == [f"error: stopped by signal {signum}"]
    assert files_in(out) == []
    assert signal.getsignal(signum) == handler  # put back as it was


@pytest.mark.parametrize("name", ["Intro: Hello.mp3", "pipe:1.mp3", "data: intro.mp3", "-dash.mp3",
                                  "音" * 80 + ".mp3"])
def test_awkward_file_names(tmp_path, copy_to, stereo_mp3, identity_model, name) -> None:
    # ffmpeg takes what comes before a colon for a protocol; the hidden temporary
    # name must fit within 255 bytes wherever the final name does
    src = copy_to(stereo_mp3, name, tmp_path / "in")
    result = run("restore", src, "--model", identity_model, "-q")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "in") == sorted([name, Path(name).stem + ".restored.wav"])


def test_sidecar_of_another_model_is_one_line(tmp_path, fill_model) -> None:
    model = tmp_path / "m.onnx"
    shutil.copyfile(fill_model, model)
    sidecar = json.loads(fill_model.with_name("fill.onnx.json").read_text())
    sidecar.update(z_bins=64, sha256="")  # the graph's z has 512 rows
    (tmp_path / "m.onnx.json").write_text(json.dumps(sidecar))
    src = tmp_path / "x.wav"
    sf.write(src, np.zeros((4410, 2), np.float32), 44100)
    line = assert_one_error_line(run("restore", src, "--model", model, "-o", tmp_path / "y.wav", columns=NARROW))
    assert "the sidecar is not this model's" in line
    assert not (tmp_path / "y.wav").exists()
    info = run("info", "--model", model)
    assert info.exit_code == 1 and "the sidecar is not this model's" in info.stderr


def test_info_with_an_ffmpeg_that_does_not_run(tmp_path, identity_model) -> None:
    result = CliRunner(env={**ENV, "COLUMNS": "240", "MP3FIX_FFMPEG": str(tmp_path / "nothing")}).invoke(
        app, ["info", "--model", str(identity_model)])
    assert result.exit_code == 1 and "cannot run ffmpeg" in result.stderr


@pytest.mark.parametrize("exe", ["nothing", "/bin/true"])
def test_restore_with_an_ffmpeg_that_does_not_run_is_one_line(tmp_path, copy_to, stereo_mp3, mono_mp3,
                                                              identity_model, exe) -> None:
    music = tmp_path / "music"
    copy_to(stereo_mp3, "a.mp3", music)
    copy_to(mono_mp3, "b.mp3", music)
    env = {**ENV, "COLUMNS": str(NARROW), "MP3FIX_FFMPEG": str(tmp_path / exe) if exe == "nothing" else exe}
    result = CliRunner(env=env).invoke(app, ["restore", str(music), "--model", str(identity_model)])
    line = assert_one_error_line(result)  # once, not once per file
    assert ("cannot run ffmpeg" if exe == "nothing" else "does not run as ffmpeg") in line
    assert not (tmp_path / "music_restored").exists()


def test_nan_samples_become_silence_with_a_note(tmp_path, identity_model) -> None:
    x = np.random.default_rng(0).normal(0, 0.1, (22050, 2)).astype(np.float32)
    x[100, 0], x[200, 1], x[300, 0] = np.nan, np.inf, -np.inf
    src = tmp_path / "nan.wav"
    sf.write(src, x, 44100, subtype="FLOAT")
    result = run("restore", src, "--model", identity_model)
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert "3 samples that were not numbers (NaN or infinite) set to 0" in result.stdout
    y, _ = read(tmp_path / "nan.restored.wav")
    assert np.isfinite(y).all()
    assert np.allclose(y[:, 1000:-1000], x.T[:, 1000:-1000], atol=1e-3)  # the rest as it was


def test_damaged_mp3_is_restored_with_a_note(tmp_path, copy_to, stereo_mp3, identity_model) -> None:
    data = bytearray(stereo_mp3.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 1500] = np.random.default_rng(5).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    src = tmp_path / "damaged.mp3"
    src.write_bytes(bytes(data))
    result = run("restore", src, "--model", identity_model)
    assert result.exit_code == 0, result.output
    assert "damaged data in the input, decoded around" in result.stdout
    whole = run("restore", copy_to(stereo_mp3, "whole.mp3"), "--model", identity_model)
    assert "damaged data" not in whole.stdout


def test_folder_restored_into_itself_twice(tmp_path, copy_to, stereo_mp3, mono_mp3, identity_model) -> None:
    lib = tmp_path / "lib"
    copy_to(stereo_mp3, "a.mp3", lib)
    copy_to(mono_mp3, "b.mp3", lib)
    first = run("restore", lib, "-o", lib, "--model", identity_model, "-q")
    assert first.exit_code == 0, first.output
    before = {p: sha256(p) for p in lib.iterdir()}
    again = run("restore", lib, "-o", lib, "--model", identity_model, "--skip-existing")
    assert again.exit_code == 0, again.output
    assert "0 restored, 2 skipped" in again.stdout  # a.wav and b.wav are outputs, not inputs
    assert {p: sha256(p) for p in lib.iterdir()} == before
    # a file of the user's that an output would replace fails alone, and stays as it was
    sf.write(lib / "c.wav", np.zeros((4410, 2), np.float32), 44100)
    copy_to(stereo_mp3, "c.mp3", lib)
    third = run("restore", lib, "-o", lib, "--model", identity_model, "--skip-existing")
    assert third.exit_code == 1
    assert third.stderr.count("error:") == 2 and "overwrite the input" in third.stderr
    assert sha256(lib / "a.wav") == before[lib / "a.wav"]


def test_skip_existing_writes_only_missing_variants(tmp_path, stereo_mp3, fill_model) -> None:
    out = tmp_path / "v" / "o.wav"
    assert run("restore", stereo_mp3, "-o", out, "--model", fill_model, "--variants", 2, "-q").exit_code == 0
    v = tmp_path / "v"
    stamps = {p.name: p.stat().st_mtime_ns for p in v.iterdir()}
    more = run("restore", stereo_mp3, "-o", out, "--model", fill_model, "--variants", 3, "--skip-existing")
    assert more.exit_code == 0, more.output
    assert files_in(v) == ["o.v1.wav", "o.v2.wav", "o.v3.wav"]
    assert {p.name: p.stat().st_mtime_ns for p in v.iterdir() if p.name != "o.v3.wav"} == stamps
    fresh = tmp_path / "f" / "o.wav"
    assert run("restore", stereo_mp3, "-o", fresh, "--model", fill_model, "--variants", 3, "-q").exit_code == 0
    assert sha256(v / "o.v3.wav") == sha256(tmp_path / "f" / "o.v3.wav")  # what a fresh run writes


def test_progress_of_a_file_counts_audio_time() -> None:
    from rich.progress import Progress

    from mp3fix.cli import _AmountColumn

    progress = Progress()
    files = progress.add_task("files", total=12, completed=3)
    song = progress.add_task("song.mp3", total=44100 * 200, completed=44100 * 65, rate=44100)
    column = _AmountColumn()
    assert column.render(progress.tasks[files]).plain.strip() == "3/12"
    assert column.render(progress.tasks[song]).plain == "1:05/3:20"
