"""The ``mp3fix`` command line: options, progress, summaries and exit codes only.

Commands are thin: ``restore`` validates its options, plans the jobs with
``mp3fix.batch`` and runs them with ``mp3fix.parallel``: one ``Restorer`` here
for ``--jobs 1``, a pool of worker processes otherwise; ``info`` reports the
model, providers and ffmpeg. Every user-facing
problem (an ``Mp3fixError``, a bad option combination, an unreadable input)
becomes one red ``error: ...`` line on stderr and exit code 1; a bad command
line (``run``: an unknown option, a value out of range) exit code 2; Ctrl-C
exits 130, SIGTERM and SIGHUP 128 + N.
The heavy imports (onnxruntime, scipy) happen inside the commands so that
``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mp3fix import __version__
from mp3fix.batch import BatchResult, Job, plan_jobs
from mp3fix.errors import Mp3fixError
from mp3fix.model import DEFAULT_SEED

if TYPE_CHECKING:
    from mp3fix.parallel import RestoreSettings
    from mp3fix.restore import Restorer

app = typer.Typer(
    name="mp3fix",
    help="Restore heavily compressed music (16-64 kbit/s MP3) with a stochastic GAN.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

EXIT_INTERRUPTED = 130
MAX_SEED = 2**32 - 1  # the seed is used modulo 2**32; larger ones would alias


class OutputFormat(str, Enum):
    wav = "wav"
    flac = "flac"


class BitDepth(str, Enum):
    b16 = "16"
    b24 = "24"
    flt = "float"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Phase(str, Enum):
    copy = "copy"
    random = "random"


def _stdout() -> Console:
    # Made per call (not at import) so the console follows the current
    # sys.stdout/sys.stderr and environment, as CliRunner swaps them.
    return Console(highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _print_error(console: Console, message: str) -> None:
    """One red line, never wrapped, with the message taken literally (no markup)."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def _print_notice(console: Console, message: str) -> None:
    """One yellow line: something the user should know that is not an error."""
    console.print(f"[yellow]{escape(message)}[/]", soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    _print_error(_stderr(), message)
    raise typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn user-facing exceptions into one line and an exit code."""
    try:
        yield
    except Mp3fixError as exc:
        _fail(str(exc))
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt as exc:
        from mp3fix.parallel import Stopped

        if isinstance(exc, Stopped):
            _fail(f"stopped by signal {exc.signum}", 128 + exc.signum)
        _fail("interrupted", EXIT_INTERRUPTED)


SOURCE_BAND_MIN_HZ = 1000.0
HIGHS_RANGE_DB = (-40.0, 12.0)


def _check_source_band(value: float | None) -> float | None:
    """``--source-band``: a finite number of hertz, 1000 or more (checked here, not by a typer
    range: ``inf`` passed that and ``nan`` failed it with a misleading message)."""
    if value is not None and not (math.isfinite(value) and value >= SOURCE_BAND_MIN_HZ):
        raise typer.BadParameter(f"{value:g} is not a frequency of {SOURCE_BAND_MIN_HZ:g} Hz or more")
    return value


def _check_highs(values: list[float] | None) -> list[float] | None:
    """``--highs``: finite numbers of decibels within ``HIGHS_RANGE_DB``."""
    lo, hi = HIGHS_RANGE_DB
    for value in values or ():
        if not (math.isfinite(value) and lo <= value <= hi):
            raise typer.BadParameter(f"{value:g} is not a level from {lo:g} to {hi:+g} dB")
    return values


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mp3fix {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", metavar="", help="Print the version and exit.", callback=_version_callback,
                     is_eager=True),
    ] = False,
) -> None:
    """Restore heavily compressed music (16-64 kbit/s MP3) with a stochastic GAN.

    Start with [bold]mp3fix restore song.mp3[/]; [bold]mp3fix info[/] shows the model and devices.
    """


def _duration(seconds: float) -> str:
    m, s = divmod(seconds, 60.0)
    return f"{int(m)}:{s:04.1f}"


def _summary_table(results: list[BatchResult]) -> Table:
    table = Table(title="mp3fix restore", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("status")
    table.add_column("duration", justify="right")
    table.add_column("outputs / notes", overflow="fold")
    style = {"ok": "green", "skipped": "yellow", "failed": "bold red"}
    for r in results:
        lines = [escape(str(o)) for o in r.outputs] if r.status != "failed" else []
        lines += [f"[yellow]{escape(n)}[/]" for n in r.notes]
        if r.message:
            lines.append(escape(r.message))
        table.add_row(
            escape(str(r.src)),
            f"[{style[r.status]}]{r.status}[/]",
            _duration(r.seconds) if r.status == "ok" else "",
            "\n".join(lines),
        )
    return table


def _totals(results: list[BatchResult], wall: float) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "failed")}
    audio_s = sum(r.seconds for r in results)
    parts = [f"{counts['ok']} restored"]
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped")
    if counts["failed"]:
        parts.append(f"[bold red]{counts['failed']} failed[/]")
    return f"{', '.join(parts)} ({_duration(audio_s)} of audio in {wall:.1f} s)"


class _AmountColumn(MofNCompleteColumn):
    """``3/12`` for the files bar; for a file's own bar, whose task has a
    ``rate`` field (its progress counts samples at that rate), the audio
    restored so far as ``1:05/3:20``."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        if not rate or task.total is None:
            return super().render(task)
        return Text(f"{_duration(task.completed / rate)[:-2]}/{_duration(task.total / rate)[:-2]}",
                    style="progress.download")


def _make_progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        _AmountColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not enabled,
    )


def _skipped(job: Job) -> BatchResult:
    return BatchResult(job.src, job.outputs, "skipped", "outputs exist")


def _run_jobs(
    restorer: Restorer,
    jobs: list[Job],
    settings: RestoreSettings,
    *,
    progress: Progress,
    on_error: Callable[[str], None],
) -> list[BatchResult]:
    """Restore each job in turn here; a failed file fails that job only."""
    from mp3fix.parallel import restore_job

    todo = sum(not j.skipped for j in jobs)
    files_task: TaskID | None = progress.add_task("files", total=todo) if todo > 1 else None
    results: list[BatchResult] = []
    for job in jobs:
        if job.skipped:
            results.append(_skipped(job))
            continue
        task = progress.add_task(job.src.name, total=None, rate=restorer.sample_rate)

        def on_progress(done: int, total: int, task: TaskID = task) -> None:
            progress.update(task, completed=done, total=total)

        try:
            result = restore_job(restorer, job, settings, on_progress)
        finally:
            progress.remove_task(task)
        if result.status == "failed":
            on_error(result.message)
        results.append(result)
        if files_task is not None:
            progress.advance(files_task)
    return results


def _run_jobs_parallel(
    jobs: list[Job],
    settings: RestoreSettings,
    workers: int,
    *,
    progress: Progress,
    on_error: Callable[[str], None],
    on_notice: Callable[[str], None],
) -> list[BatchResult]:
    """Restore the jobs in ``workers`` processes, with one bar over files; the
    results come back in job order."""
    from mp3fix.parallel import run_parallel

    files_task = progress.add_task("files", total=sum(not j.skipped for j in jobs))
    by_index: dict[int, BatchResult] = {i: _skipped(j) for i, j in enumerate(jobs) if j.skipped}
    with closing(run_parallel(jobs, settings, workers, on_notice=on_notice)) as finished:
        for index, result in finished:
            if result.status == "failed":
                on_error(result.message)
            by_index[index] = result
            progress.advance(files_task)
    return [by_index[i] for i in range(len(jobs))]


@app.command()
def restore(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Audio files and/or folders (folders are searched recursively).", show_default=False,
                       metavar="FILE_OR_FOLDER"),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output file ([bold].wav[/] or [bold].flac[/]) for one input, "
                     "else an output folder that mirrors the input tree. Default: [bold]NAME.restored.wav[/] "
                     "beside a file, [bold]FOLDER_restored/[/] beside a folder.", show_default=False),
    ] = None,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option("--format", help="Output format (default: from the [bold]-o[/] name, else wav).",
                     show_default=False),
    ] = None,
    bit_depth: Annotated[
        BitDepth | None,
        typer.Option("--bit-depth", help="Sample format; default float for WAV, 24 for FLAC. "
                     "16 and 24 clip samples beyond full scale.", show_default=False),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(min=0, max=MAX_SEED, help="Seed of the generator's noise: the same seed gives the same "
                     "output."),
    ] = DEFAULT_SEED,
    variants: Annotated[
        int,
        typer.Option(min=1, help="Write N different restorations of each file, named [bold]NAME.v1.wav[/] "
                     "... [bold]NAME.vN.wav[/]."),
    ] = 1,
    device: Annotated[Device, typer.Option(help="Where the model runs; auto takes CUDA when available.")] = (
        Device.auto
    ),
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="CPU threads for the model, per job. \\[default: the available cores shared "
                     "out among the jobs]", show_default=False),
    ] = None,
    n_jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", min=1, help="Restore N files at once, each in its own process (for many "
                     "files on a CPU with many cores)."),
    ] = 1,
    chunk_batch: Annotated[
        int | None,
        typer.Option(min=1, help="Chunks of audio per model call; the output is the same. More gained nothing "
                     "on a CPU and were slower on a GPU with the shipped model. \\[default: 1]",
                     show_default=False),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="ONNX generator to use (its .onnx.json sidecar must sit beside it). "
                     "\\[default: the shipped model]", show_default=False),
    ] = None,
    phase: Annotated[Phase, typer.Option(help="Phase of the restored band: copied from below the cutoff, "
                                         "or random.")] = Phase.copy,
    phase_iters: Annotated[
        int, typer.Option(min=0, help="Griffin-Lim iterations refining the restored band's phase.")
    ] = 0,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", metavar="", help="Keep outputs that exist already and write only the "
                                   "missing ones (a file whose outputs all exist is skipped).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar="", help="Replace existing outputs.")] = False,
    ignore_bitrate: Annotated[
        bool, typer.Option("--ignore-bitrate", metavar="", help="Restore also where an MP3's bitrate says the "
                           "recording itself ends below the band its encoder keeps (where that band is 13 kHz or "
                           "more, e.g. 80 kbit/s stereo and up, and at 64, 96 or 256 kbit/s stereo or 48 mono, such "
                           "passages are left alone; an MP3 re-encoded from a lower bitrate looks the same).")
    ] = False,
    source_band: Annotated[
        float | None,
        typer.Option("--source-band", metavar="HZ", callback=_check_source_band,
                     help="Where the recording itself ends, if you know it (a source sampled at 22 kHz: 10000; "
                     "a cassette: about 14000; 1000 or more): nothing is added above it. \\[default: not known]",
                     show_default=False),
    ] = None,
    highs: Annotated[
        list[float] | None,
        typer.Option("--highs", metavar="DB", callback=_check_highs,
                     help="The restored highs this many dB louder, or quieter if negative, than the model's "
                     "choice: e.g. -12 for a dark or band-limited recording that comes out too bright. "
                     "The MP3's own band (below the cutoff's 8-bin ramp) is never changed. Given more than once "
                     "(--highs -12 --highs -6 --highs 0), each file is written at every level to listen and choose, "
                     "named [bold]NAME.highs-12.wav[/] ... (-40 to +12) \\[default: 0]", show_default=False),
    ] = None,
    keep_mp3_band: Annotated[
        bool, typer.Option("--keep-mp3-band", metavar="", help=(
            "Leave every bin under the cutoff as the MP3 has it, and restore the band above from it as it is: "
            "faster (one generator pass instead of two). By default, where the model's sidecar asks for it, the "
            "bins the encoder dropped just under the cutoff are filled from the model first (the shipped model: "
            "the 2.8 kHz under any cutoff up to 12.5 kHz, MP3s of up to 64 kbit/s)."))
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", metavar="", help="Print errors only: no progress, no summary.")
    ] = False,
) -> None:
    """Restore low-bitrate audio files to 44.1 kHz WAV or FLAC.

    Errors in one file do not stop the others; the summary lists them and the
    exit code is 1 if any file failed.
    """
    err = _stderr()
    out = _stdout()
    from mp3fix.parallel import stop_on_signals

    with _user_errors(), stop_on_signals():
        if skip_existing and overwrite:
            _fail("use either --skip-existing or --overwrite, not both")
        from mp3fix import audio

        levels = tuple(highs) if highs else (0.0,)
        planned = plan_jobs(inputs, output, fmt.value if fmt else None, variants, skip_existing, levels,
                            own_output=audio.written_by_mp3fix)
        jobs = [j for j in planned if not j.error]  # the others fail without being tried
        depth = bit_depth.value if bit_depth else None
        for job in jobs:  # the format and bit depth are checked before any work
            for o in job.outputs:
                audio.output_subtype(o, depth)
        if any(not j.skipped for j in jobs):
            audio.ffmpeg_version()  # an ffmpeg that does not run is one line, not a failure per file

        from mp3fix.allocator import tune_allocator
        from mp3fix.parallel import RestoreSettings, oversubscription_warning
        from mp3fix.runtime import default_threads

        tune_allocator()

        settings = RestoreSettings(model=model, device=device.value, threads=threads, phase=phase.value,
                                   phase_iters=phase_iters, chunk_batch=chunk_batch, seed=seed, bit_depth=depth,
                                   overwrite=overwrite, pipeline=n_jobs == 1, guard=not ignore_bitrate,
                                   source_band_hz=source_band, hole_fill=not keep_mp3_band,
                                   highs=levels, skip_existing=skip_existing)

        def notice(message: str) -> None:
            if not quiet:
                _print_notice(err, message)

        def on_error(message: str) -> None:
            _print_error(err, message)

        for job in planned:
            if job.error:
                on_error(job.error)
        t0 = time.perf_counter()
        workers = min(n_jobs, sum(not j.skipped for j in jobs))
        if not jobs:
            results = []
        elif workers == 0:
            results = [_skipped(j) for j in jobs]
        elif workers > 1:
            warning = oversubscription_warning(default_threads(), workers, threads)
            if warning is not None:
                notice(warning)
            with _make_progress(err, enabled=not quiet and err.is_terminal) as progress:
                results = _run_jobs_parallel(jobs, settings, workers, progress=progress, on_error=on_error,
                                             on_notice=notice)
        else:
            # one model for the whole batch, loaded before any file is touched
            restorer = settings.restorer()
            if restorer.notice is not None:
                notice(restorer.notice)
            with _make_progress(err, enabled=not quiet and err.is_terminal) as progress:
                results = _run_jobs(restorer, jobs, settings, progress=progress, on_error=on_error)
        done = iter(results)
        results = [BatchResult(j.src, j.outputs, "failed", j.error) if j.error else next(done) for j in planned]
        if not quiet:
            out.print(_summary_table(results))
            out.print(_totals(results, time.perf_counter() - t0), soft_wrap=True)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


@app.command()
def info(
    model: Annotated[
        Path | None,
        typer.Option(help="ONNX generator to describe. \\[default: the shipped model]", show_default=False),
    ] = None,
    device: Annotated[Device, typer.Option(help="Device whose provider choice to show.")] = Device.auto,
) -> None:
    """Show the version, the model and its settings, onnxruntime providers and ffmpeg.

    Problems (a missing model, an unavailable device) are shown in the table and
    as error lines; the exit code is then 1.
    """
    with _user_errors():
        problems = _info_table(model, device)
    if problems:
        err = _stderr()
        for message in problems:
            _print_error(err, message)
        raise typer.Exit(1)


def _info_table(model: Path | None, device: Device) -> list[str]:
    """Print the info table; return the problems found."""
    from mp3fix import audio
    from mp3fix.model import load_config, resolve_model
    from mp3fix.runtime import Generator, available_providers, choose_providers

    problems: list[str] = []
    table = Table(title="mp3fix info", title_justify="left", show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value", overflow="fold")

    def row(name: str, value: object) -> None:
        table.add_row(name, escape(str(value)))

    def problem(name: str, exc: Exception) -> None:
        problems.append(str(exc))
        table.add_row(name, f"[red]{escape(str(exc))}[/]")

    row("version", __version__)
    try:
        path = resolve_model(model)
        row("model", path)
        cfg = load_config(path)
    except Mp3fixError as exc:
        problem("model", exc)
    else:
        row("model name", cfg.name)
        if cfg.status:
            row("model status", cfg.status)
        row("sample rate", f"{cfg.sample_rate} Hz")
        row("n_fft / hop", f"{cfg.n_fft} / {cfg.hop}")
        row("model bins", cfg.n_bins)
        rate = cfg.sample_rate
        for name, frames, samples in (("segment", cfg.segment_frames, cfg.segment),
                                      ("overlap", cfg.overlap_frames, cfg.overlap),
                                      ("context", cfg.context_frames, cfg.context)):
            row(name, f"{frames} frames ({samples / rate:.2f} s)")
        for key, label in (("steps", "training steps"), ("params", "parameters")):
            if cfg.training.get(key) is not None:
                row(label, cfg.training[key])
        try:  # the graph itself, against its sidecar (on the CPU: the device is checked below)
            Generator(path, device="cpu", threads=1)
        except Mp3fixError as exc:
            problem("model check", exc)
        else:
            row("model check", "the graph matches its sidecar")
    avail = available_providers()
    row("providers available", ", ".join(avail))
    try:
        row(f"providers for --device {device.value}", ", ".join(choose_providers(device.value, avail)))
    except Mp3fixError as exc:
        problem(f"providers for --device {device.value}", exc)
    try:
        exe = audio.ffmpeg_exe()
        row("ffmpeg", exe)
        row("ffmpeg version", audio.ffmpeg_version(exe))
    except Mp3fixError as exc:
        problem("ffmpeg", exc)
    _stdout().print(table)
    return problems


def _click_exceptions():  # noqa: ANN202 - a module
    """The exceptions module of the click that typer runs on: its own copy since
    typer 0.26, click itself before."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def run(argv: list[str] | None = None) -> None:
    """The ``mp3fix`` command: the app, with a bad command line reported as one
    red line (what is wrong, and where to read more) and exit code 2, not
    click's boxed usage message."""
    ex = _click_exceptions()
    no_args = getattr(ex, "NoArgsIsHelpError", ())
    try:
        code = app(args=argv, prog_name="mp3fix", standalone_mode=False)
    except no_args as exc:  # `mp3fix` or a command alone: its help
        if exc.ctx is not None:
            typer.echo(exc.ctx.get_help())
        code = 2
    except ex.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "mp3fix"
        _print_error(_stderr(), f"{exc.format_message()} (see {where} --help)")
        code = exc.exit_code
    except typer.Abort:  # Ctrl-C while click itself was running
        _print_error(_stderr(), "interrupted")
        code = EXIT_INTERRUPTED
    raise SystemExit(code if isinstance(code, int) else 0)
