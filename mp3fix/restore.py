"""The library API: ``Restorer(...).restore(...)`` and ``restore_file``.

One chunk's work (``Restorer.process_chunk``): STFT, detect the cutoff, draw z,
run the generator on all channels and variants as one batch, rebuild phase,
inverse STFT. ``Restorer.process_chunks`` does the same for several chunks with
one generator call (``chunk_batch``). Merging chunks is ``mp3fix.chunking``'s job; reading and writing
files is ``mp3fix.audio``'s.

z is drawn on the host in blocks of ``Z_BLOCK`` frames, each from a generator
seeded by (seed, variant, channel, block index), so the noise at a given moment
of the song depends only on the seed and variant, not on how it was chunked or
which provider ran it. Each value is a 16-bit random index into a table of the
standard normal's quantiles (``normal_table``): numpy's own normal sampler cost
0.7 s of a 3-minute song's 6 s, the table 0.3 s.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

from mp3fix import __version__, audio
from mp3fix.chunking import stream_overlap_add
from mp3fix.codec import REACH_IGNORED_ABOVE_SHARE, own_edge_hz
from mp3fix.model import (
    DEFAULT_SEED,
    band_mask,
    extension_gain,
    extension_shelf,
    fill_holes,
    hole_fill_bins,
    resolve_model,
)
from mp3fix.phase import STRATEGIES, copy_phase_sources, restore_phase, unit_phasor
from mp3fix.runtime import Generator
from mp3fix.spectral import (
    detect_cutoff,
    frame_reach,
    from_mid_side,
    interior_frames,
    istft,
    log_magnitude,
    stft,
    to_mid_side,
)

Z_BLOCK = 64
# Chunks per generator call. One: batching 8 chunks a call on CUDA was meant to
# keep a GPU busy, but on an H100 it was slower than one a call (a 30-minute
# song 12.7-14.0 s against 10.6-11.1 s, scripts/gpu-tune.py): the generator is
# small and the song's DSP, on the host, sets the pace.
DEFAULT_CHUNK_BATCH = 1
# Variants a file pass restores at once (``restore_file``): memory grows by about
# 75 MB per variant restored together (arrays of a stereo chunk, twice over with
# the pipeline), so --variants 32 is restored four at a time, in eight passes.
VARIANT_GROUP = 4

NOISE_Z = 0
NOISE_PHASE = 1


@functools.cache
def normal_table() -> np.ndarray:
    """(65536,) float32 standard normal quantiles at the midpoints (k + 0.5) / 65536.

    A uniform 16-bit index into it is a draw from N(0, 1) quantised to 65536
    equally likely values (unit variance to 1e-5, tails cut at 4.3 sigma).
    """
    # numpy has no inverse normal CDF, and scipy.special costs 0.4 s to import;
    # NormalDist is exact to double precision, and the table is symmetric.
    inv = NormalDist().inv_cdf
    upper = np.array([inv((k + 0.5) / 65536) for k in range(32768, 65536)], dtype=np.float64)
    return np.concatenate([-upper[::-1], upper]).astype(np.float32)


def draw_z(seed: int, variant: int, channel: int, first_frame: int, frames: int,
           z_channels: int, bins: int, stream: int = NOISE_Z, out: np.ndarray | None = None) -> np.ndarray:
    """(z_channels, bins, frames) noise for absolute frames [first_frame,
    first_frame + frames); a pure function of its arguments. ``stream`` NOISE_Z
    gives standard normal z (through ``normal_table``), NOISE_PHASE uniform
    phases in [-pi, pi). ``out``, if given, is filled and returned instead of a
    new array."""
    if out is None:
        out = np.empty((z_channels, bins, frames), dtype=np.float32)
    b0 = first_frame // Z_BLOCK
    b1 = (first_frame + frames - 1) // Z_BLOCK
    for b in range(b0, b1 + 1):
        rng = np.random.default_rng([seed & 0xFFFFFFFF, variant, channel, b + (1 << 30), stream])
        shape = (z_channels, bins, Z_BLOCK)
        if stream == NOISE_PHASE:
            block = rng.uniform(-np.pi, np.pi, shape).astype(np.float32)
        else:
            block = normal_table()[rng.integers(0, 65536, shape, dtype=np.uint16)]
        lo = max(first_frame, b * Z_BLOCK)
        hi = min(first_frame + frames, (b + 1) * Z_BLOCK)
        out[:, :, lo - first_frame : hi - first_frame] = block[:, :, lo - b * Z_BLOCK : hi - b * Z_BLOCK]
    return out


def global_z(variant: int, channels: int, brighter: float = 1.0) -> np.ndarray:
    """(channels,) the file-wide z of ``ModelConfig.z_global_channels`` for one
    variant: a ladder of the standard normal's quantiles, not random draws, so
    that a few variants already span the levels the model finds plausible.

    Variant 0 (the first) gets 0, the median: a single restoration is the
    generator's middle answer. Then pairs on either side, darker first, each
    pair further out: +-0.84, +-1.28, +-1.64, +-1.96, ... (the 20 %, 10 %,
    5 %, 2.5 %, ... tails). ``brighter`` (the sidecar's ``z_global_brighter``,
    +1 or -1) is the sign of z that makes the model's highs louder. The same
    for every audio channel (a variant brighter on the left than the right
    would move the stereo image), every chunk and every seed: the seed
    changes the detail, the variant the level.
    """
    if variant == 0:
        return np.zeros(channels, np.float32)
    k = (variant + 1) // 2
    value = NormalDist().inv_cdf(1.0 - 0.2 / 2 ** (k - 1))
    sign = -1.0 if variant % 2 else 1.0  # odd variants (2nd, 4th, ...) darker
    return np.full(channels, sign * brighter * value, np.float32)


@dataclass(frozen=True)
class OwnEdge:
    """Where a chunk's cliff is the recording's own band edge, not the encoder's,
    in STFT bins (0: cannot be told); from the band the file's encoder kept
    (:mod:`mp3fix.codec`)."""

    cliff_below: int = 0  # a cliff below this bin (:func:`mp3fix.codec.own_edge_hz`)
    reach_below: int = 0  # frames that reach no higher (:func:`mp3fix.codec.encoder_reach_hz`)
    reach_ignored_above: int = 0  # frames reaching beyond this do not count
    given: int = 0  # the recording's edge as the user gave it: nothing is added from here up

    @classmethod
    def for_band(cls, band_hz: float | None, reach_hz: float | None, sample_rate: int, n_fft: int,
                 source_band_hz: float | None = None) -> OwnEdge:
        """From the band the encoder kept, the reach that tells and the
        recording's own band as the user knows it (each None: not told)."""

        def to_bin(hz: float | None) -> int:
            return int(hz / sample_rate * n_fft) if hz else 0

        ignored = REACH_IGNORED_ABOVE_SHARE * band_hz if reach_hz and band_hz else None
        return cls(to_bin(own_edge_hz(band_hz)), to_bin(reach_hz), to_bin(ignored), to_bin(source_band_hz))

    def says_own(self, cutoff: int, power: np.ndarray) -> bool:
        """Whether a chunk with this cliff and power spectrogram (..., bins, frames)
        ends at the recording's own edge."""
        if cutoff < self.cliff_below:
            return True
        if not self.reach_below:
            return False
        return frame_reach(power, ignore_above=self.reach_ignored_above) < self.reach_below


NOT_TOLD = OwnEdge()


@dataclass
class _Prepared:
    """One chunk between its STFT and the generator call (see ``process_chunks``)."""

    spec: np.ndarray  # (C, bins+1, frames) of the input
    cutoff: int
    mask1: np.ndarray  # (n_bins,) band mask
    first_frame: int
    n: int  # samples in the chunk
    # logmag, mask, z, copied: (variants*C, ...) rows; (logmag, z) until ``Restorer._inputs``
    inputs: tuple[np.ndarray, ...]
    index: int = 0  # position in the caller's list
    top: int = 0  # nothing is added from this bin up (0: up to Nyquist)
    fill: int = 0  # bins under the cutoff whose dropouts are filled before the generator's pass
    mid_side: bool = False  # spec holds mid and side, not left and right
    first_variant: int = 0  # the rows' variants are first_variant, first_variant + 1, ...


def software_tag(highs_db: float = 0.0) -> str:
    """The ``software`` tag of an output: mp3fix and its version, and the
    ``highs`` level where it is not 0 (so a chosen level can be read back)."""
    return f"mp3fix {__version__}" + (f" (highs {highs_db:+g} dB)" if highs_db else "")


@dataclass
class FileResult:
    input: Path
    outputs: list[Path]
    seconds: float
    input_rate: int
    channels: int
    clipped: int = 0
    notes: list[str] = field(default_factory=list)


class Restorer:
    """Restore audio with a shipped or given ONNX generator.

    ``chunk_batch`` is how many chunks go to the generator in one call (None:
    ``DEFAULT_CHUNK_BATCH``); it changes speed
    and memory, never the output. ``pipeline`` runs each generator call on a
    worker thread while this thread decodes, transforms and finishes the
    neighbouring chunks (onnxruntime releases the GIL); it too changes speed,
    never the output. ``hole_fill`` False skips the filling of the encoder's
    dropouts under the cutoff that the model's sidecar may ask for
    (``ModelConfig.hole_fill_bins``; a generator pass of its own, before the
    band above the cutoff is restored from the filled band). ``notice`` is
    the generator's one-line notice for the user (CUDA was chosen but not
    usable), else None. ``highs_db`` moves the restored band (above the
    cutoff, not the MP3's own bins) by that many decibels from the level the
    model and its calibration chose: a listener's correction for a recording
    that comes out too bright (dark or band-limited originals) or too dull.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        phase: str = "copy",
        phase_iters: int = 0,
        chunk_batch: int | None = None,
        pipeline: bool = True,
        hole_fill: bool = True,
        mid_side: bool = True,
        highs_db: float = 0.0,
    ) -> None:
        if phase not in STRATEGIES:
            raise ValueError(f"phase must be one of {STRATEGIES}")
        if not np.isfinite(highs_db):
            raise ValueError(f"highs_db must be a finite number of decibels, got {highs_db!r}")
        if chunk_batch is not None and (isinstance(chunk_batch, bool) or chunk_batch < 1):
            raise ValueError(f"chunk_batch must be at least 1, got {chunk_batch!r}")
        # with the pipeline, the model's threads must not busy-wait on the cores the DSP needs
        self.generator = Generator(resolve_model(model), device=device, threads=threads, spin=not pipeline)
        self.config = self.generator.config
        if chunk_batch is None:
            chunk_batch = DEFAULT_CHUNK_BATCH
        self.chunk_batch = chunk_batch
        self.pipeline = pipeline
        self.phase = phase
        self.phase_iters = phase_iters
        # False leaves the encoder's dropouts under the cutoff as they are even
        # where the model's sidecar asks to fill them (benchmarks measure it so)
        self.hole_fill = hole_fill
        # a stereo chunk is restored as its mid and side, each as one channel with the same
        # noise, then turned back into left and right (False: as left and right, noise of their own)
        self.mid_side = mid_side
        self.highs_db = float(highs_db)
        # seconds per stage, filled only when a caller (benchmarks/speed.py) sets a dict
        self.timings: dict[str, float] | None = None
        # chunks passed through because their cliff was the recording's own edge
        self.own_edge_chunks = 0

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        if self.timings is None:
            yield
            return
        t = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t

    @property
    def notice(self) -> str | None:
        return self.generator.notice

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def process_chunk(self, chunk: np.ndarray, start: int, seed: int, variants: int,
                      own_edge: OwnEdge = NOT_TOLD) -> np.ndarray:
        """(variants*C, n) audio chunk starting at absolute sample ``start`` -> restored.

        The input rows are the C source channels repeated for each variant; the
        STFT and cutoff are computed once and the generator runs on all rows.
        """
        return self.process_chunks([chunk], [start], seed, variants, own_edge)[0]

    def process_chunks(self, chunks: list[np.ndarray], starts: list[int], seed: int,
                       variants: int, own_edge: OwnEdge = NOT_TOLD) -> list[np.ndarray]:
        """Several chunks of one length as in :meth:`process_chunk`, with ONE generator call.

        The STFT, cutoff, phase and inverse STFT are per chunk; the generator
        gets the rows (variants x channels) of every chunk that needs it stacked
        into one batch. Mask and copied band are per-row inputs, so chunks with
        different cutoffs batch together; a chunk with nothing to restore is
        passed through and not sent at all. The output is the same as chunk by
        chunk (the model treats rows independently). A chunk that ``own_edge``
        says ends at the recording's own band edge, not the encoder's, is
        passed through too (see :class:`OwnEdge` and :mod:`mp3fix.codec`).
        """
        return self._submit(chunks, starts, seed, variants, None, own_edge)()

    def _submit(self, chunks: list[np.ndarray], starts: list[int], seed: int, variants: int,
                executor: Executor | None, own_edge: OwnEdge = NOT_TOLD,
                highs_db: float | None = None, first_variant: int = 0) -> Callable[[], list[np.ndarray]]:
        """:meth:`process_chunks` in two halves: STFT and inputs now, the generator
        call on ``executor`` (here and now when None); the returned function
        waits for it and does phase and inverse STFT. ``highs_db``,
        ``first_variant``: as :meth:`restore_stream`'s (None: the restorer's own)."""
        highs = self.highs_db if highs_db is None else float(highs_db)
        outs: dict[int, np.ndarray] = {}
        todo: list[_Prepared] = []
        for i, (chunk, start) in enumerate(zip(chunks, starts, strict=True)):
            ms = self.mid_side and chunk.shape[0] == 2 * variants
            rows = np.tile(to_mid_side(chunk[:2]), (variants, 1)) if ms else chunk
            prep = self._prepare(rows, start, seed, variants, own_edge, mid_side=ms, first_variant=first_variant)
            if prep is None:
                outs[i] = chunk.copy()  # full-band (or silent) chunk: nothing to restore
            else:
                prep.index = i
                todo.append(prep)
        if not todo:
            return lambda: [outs[i] for i in range(len(chunks))]

        def generate() -> np.ndarray:
            # the dropout filling's own generator pass, where a chunk has one, runs here too: on
            # the worker thread, beside this thread's DSP
            for p in todo:
                if p.fill:
                    self._inputs(p, seed, variants)
            with self._stage("model"):
                if len(todo) == 1:
                    inputs = list(todo[0].inputs)  # nothing to stack: no copy
                else:
                    inputs = [np.concatenate(parts) for parts in zip(*(p.inputs for p in todo), strict=True)]
                for p in todo:
                    p.inputs = ()  # the stacked copy is all the generator needs
                return self.generator(*inputs)

        if executor is None:
            done = generate()
            result: Callable[[], np.ndarray] = lambda: done  # noqa: E731
        else:
            result = executor.submit(generate).result

        def collect() -> list[np.ndarray]:
            with self._stage("model"):  # with a worker, only the time spent waiting for it
                out = result()
            restored = out[:, 0, :, : todo[0].spec.shape[-1]]
            rows = variants * todo[0].spec.shape[0]
            for k, prep in enumerate(todo):
                out_k = self._finish(prep, restored[k * rows : (k + 1) * rows], seed, variants, highs)
                outs[prep.index] = from_mid_side(out_k) if prep.mid_side else out_k
            return [outs[i] for i in range(len(chunks))]

        return collect

    def _prepare(self, chunk: np.ndarray, start: int, seed: int, variants: int,
                 own_edge: OwnEdge = NOT_TOLD, mid_side: bool = False,
                 first_variant: int = 0) -> _Prepared | None:
        """STFT, cutoff and generator inputs of one chunk; None if it has nothing to restore.
        ``mid_side``: the chunk's two channels are mid and side, which share their noise;
        its rows are variants ``first_variant`` ... ``first_variant + variants - 1``."""
        cfg = self.config
        rows, n = chunk.shape
        c = rows // variants
        with self._stage("stft"):
            spec = stft(chunk[:c], cfg.n_fft, cfg.hop)  # (C, bins+1, frames)
            low = spec[:, : cfg.n_bins]
            # not the edge frames: they hold the click of the chunk's cut-out edges
            power = np.abs(low[..., interior_frames(n, cfg.n_fft, cfg.hop)]) ** 2
            cutoff = detect_cutoff(power, cfg.cutoff_drop_db, cfg.cutoff_width)
        if cutoff >= cfg.n_bins - cfg.full_band_margin_bins:
            return None
        if own_edge.given and cutoff >= own_edge.given - cfg.mask_ramp_bins:
            return None  # the MP3 keeps all the recording has, as the caller says
        if own_edge.says_own(cutoff, power):
            self.own_edge_chunks += 1
            return None
        with self._stage("model"):
            # Built at the model's padded length (a multiple of its time_multiple)
            # so that the generator does not copy every input again to pad it.
            frames = low.shape[-1]
            padded = frames + (-frames) % cfg.time_multiple
            rows = variants * c
            mask1 = band_mask(cutoff, cfg.n_bins, cfg.mask_ramp_bins)
            first_frame = start // cfg.hop
            lm = np.full((rows, 1, cfg.n_bins, padded), np.log(cfg.log_floor), np.float32)
            lm[:c, 0, :, :frames] = log_magnitude(low, cfg.log_floor)
            z = np.zeros((rows, cfg.z_channels, cfg.z_bins, padded), np.float32)
            for v in range(variants):
                self._variant_z(seed, first_variant + v, c, first_frame, frames, mid_side, z[v * c : (v + 1) * c])
        prep = _Prepared(spec, cutoff, mask1, first_frame, n, (lm, z), top=own_edge.given, mid_side=mid_side,
                         first_variant=first_variant)
        prep.fill = hole_fill_bins(cutoff, cfg) if self.hole_fill else 0
        if not prep.fill:  # else on the generator's thread, after the filling pass (``_inputs``)
            self._inputs(prep, seed, variants)
        return prep

    def _variant_z(self, seed: int, variant: int, c: int, first_frame: int, frames: int, mid_side: bool,
                   out: np.ndarray) -> None:
        """Fill ``out`` (C, z_channels, z_bins, padded frames; zeros beyond ``frames``)
        with the noise of one variant's C rows."""
        cfg = self.config
        for ch in range(c):
            draw_z(seed, variant, 0 if mid_side else ch, first_frame, frames, cfg.z_channels, cfg.z_bins,
                   out=out[ch, :, :, :frames])
        if cfg.z_global_channels:
            out[:, cfg.z_channels - cfg.z_global_channels :] = \
                global_z(variant, cfg.z_global_channels, cfg.z_global_brighter)[None, :, None, None]

    def _inputs(self, prep: _Prepared, seed: int, variants: int) -> None:
        """``prep.inputs`` from its (logmag, z) rows: the channels' logmag rows
        repeated for each variant, the band mask and the copied band; first,
        where ``prep.fill`` says, the encoder's dropouts under the cutoff are
        filled, so that the band above is restored from the filled band."""
        cfg = self.config
        with self._stage("model"):
            lm, z = prep.inputs
            c = prep.spec.shape[0]
            if prep.fill:
                # the filling is the first variant's, whichever variants these rows are
                z0 = z[:c]
                if prep.first_variant:
                    z0 = np.zeros_like(z0)
                    self._variant_z(seed, 0, c, prep.first_frame, prep.spec.shape[-1], prep.mid_side, z0)
                self._fill_dropouts(prep.spec[:, : cfg.n_bins], lm[:c], z0, prep.cutoff, prep.fill, seed,
                                    prep.first_frame)
            lm[c:] = np.tile(lm[:c], (variants - 1, 1, 1, 1))
            mask = np.broadcast_to(prep.mask1[None, None, :, None], lm.shape).astype(np.float32)
            copied = lm[:, :, copy_phase_sources(prep.cutoff, cfg.n_bins, cfg.copy_width_bins), :]
            prep.inputs = (lm, mask, z, copied)

    def _fill_dropouts(self, low: np.ndarray, lm: np.ndarray, z: np.ndarray, cutoff: int, fill: int, seed: int,
                       first_frame: int) -> None:
        """Fill, in place, the dropouts in the ``fill`` bins under ``cutoff`` of
        ``low`` (C, bins, frames), the MP3's STFT, and of its log-magnitude rows
        ``lm`` (C, 1, bins, padded frames): the generator restores those rows,
        with ``z`` (the first variant's noise), as if the cutoff were ``fill``
        bins lower, and a bin there where the MP3 is more than ``hole_fill_db``
        below that restoration takes its value. Its phase is the ``copy`` (or
        ``random``) phase of the band below, without Griffin-Lim iterations."""
        cfg = self.config
        lo = cutoff - fill
        band = slice(lo, cutoff)
        low_mask = band_mask(lo, cfg.n_bins, cfg.mask_ramp_bins)
        mask = np.broadcast_to(low_mask[None, None, :, None], lm.shape).astype(np.float32)
        copied = lm[:, :, copy_phase_sources(lo, cfg.n_bins, cfg.copy_width_bins), :]
        frames = low.shape[-1]
        restored = self.generator(lm, mask, z, copied)[:, 0, band, :frames]
        # the level calibration, as for the band above the cutoff (the mask is 1 in this band)
        gain = np.float32(extension_gain(cutoff, cfg)) + extension_shelf(cutoff, cfg)[band, None]
        mag = np.maximum(np.exp(restored + gain) - cfg.log_floor, 0.0)
        if self.phase == "random":
            unit = np.exp(1j * self._random_phase(seed, 1, low.shape[0], first_frame, frames)[:, band])
        else:
            src = copy_phase_sources(lo, cfg.n_bins, cfg.copy_width_bins)[band]
            unit = unit_phasor(low[:, src, :])
        mp3_band = low[:, band]  # a view: filled in place, and with it the chunk's STFT
        fill_holes(mp3_band, (mag * unit).astype(np.complex64), mp3_band, 0, fill, cfg.hole_fill_db)
        lm[:, 0, band, :frames] = log_magnitude(low[:, band], cfg.log_floor)

    def _random_phase(self, seed: int, variants: int, c: int, first_frame: int, frames: int,
                      shared: bool = False, first_variant: int = 0) -> np.ndarray | None:
        """The ``random`` phase strategy's phases, per absolute frame so that overlapping chunks
        agree; ``shared``: the same for every channel (mid and side)."""
        if self.phase != "random":
            return None
        return np.concatenate([draw_z(seed, first_variant + v, 0 if shared else ch, first_frame, frames, 1,
                                      self.config.n_bins, NOISE_PHASE) for v in range(variants) for ch in range(c)])

    def _finish(self, prep: _Prepared, restored: np.ndarray, seed: int, variants: int,
                highs_db: float) -> np.ndarray:
        """Phase and inverse STFT of one chunk from its rows of generator output, its
        restored band moved by ``highs_db`` decibels."""
        cfg = self.config
        spec, first_frame = prep.spec, prep.first_frame
        c, frames = spec.shape[0], spec.shape[-1]
        with self._stage("phase"):
            gain = extension_gain(prep.cutoff, cfg) + highs_db / 20.0 * float(np.log(10.0))
            mp3_low = np.tile(spec[:, : cfg.n_bins], (variants, 1, 1))
            random_phase = self._random_phase(seed, variants, c, first_frame, frames, prep.mid_side,
                                              prep.first_variant)
            # by cutoff, and by frequency (the sidecar's shelf)
            gains = (gain + extension_shelf(prep.cutoff, cfg)) * prep.mask1
            if gains.any():  # on the restored band only: the MP3's own bins keep their level
                restored = restored + gains[:, None].astype(np.float32)
            mag = np.maximum(np.exp(restored) - cfg.log_floor, 0.0)
            if prep.top:  # the recording's own edge, as the user gave it: fade out below it, nothing above
                keep = np.clip((prep.top - np.arange(cfg.n_bins)) / cfg.mask_ramp_bins, 0.0, 1.0)
                mag = mag * (1.0 - prep.mask1 * (1.0 - keep))[:, None].astype(np.float32)
            out_low = restore_phase(mag, mp3_low, prep.mask1, prep.cutoff, self.phase, self.phase_iters,
                                    cfg.n_fft, cfg.hop, prep.n, random_phase, cfg.copy_width_bins)
        with self._stage("istft"):
            full = np.concatenate([out_low, np.tile(spec[:, cfg.n_bins :], (variants, 1, 1))], axis=1)
            return istft(full, cfg.n_fft, cfg.hop, prep.n)

    def restore_stream(
        self,
        blocks: Iterable[np.ndarray],
        seed: int = DEFAULT_SEED,
        variants: int = 1,
        on_progress: Callable[[int], None] | None = None,
        encoder_band_hz: float | None = None,
        encoder_reach_hz: float | None = None,
        source_band_hz: float | None = None,
        highs_db: float | None = None,
        first_variant: int = 0,
    ) -> Iterator[np.ndarray]:
        """Restore a stream of (C, n) blocks at the model rate; yields (variants*C, m)
        blocks, variant-major (rows v*C .. v*C+C-1 are variant v).

        ``encoder_band_hz`` is the band the source's encoder kept
        (:func:`mp3fix.codec.encoder_band_hz`; None: unknown). A chunk whose
        cliff lies below :func:`mp3fix.codec.own_edge_hz` of it, or whose
        frames reach no higher than ``encoder_reach_hz``
        (:func:`mp3fix.codec.encoder_reach_hz`; None: not told), is left as it
        is: the recording itself ends there. ``source_band_hz`` is where the
        recording itself ends when the caller knows it (a 22 kHz source, a
        tape, a lossy original; None: not known): nothing is added above it,
        and a chunk whose cliff lies there or higher is left as it is.
        ``highs_db`` moves the restored band as the restorer's own ``highs_db``
        does, for this stream only (None: the restorer's own).
        ``first_variant``: the rows are variants ``first_variant`` to
        ``first_variant + variants - 1``, each exactly as a stream of all of
        them from 0 gives it (so a caller can restore many variants a few at a
        time, in bounded memory).
        """
        cfg = self.config
        if variants < 1 or first_variant < 0:
            raise ValueError("variants must be at least 1 and first_variant at least 0")
        if highs_db is not None and not np.isfinite(highs_db):
            raise ValueError(f"highs_db must be a finite number of decibels, got {highs_db!r}")
        if source_band_hz is not None and source_band_hz <= 0:
            raise ValueError("source_band_hz must be positive")
        own_edge = OwnEdge.for_band(encoder_band_hz, encoder_reach_hz, cfg.sample_rate, cfg.n_fft, source_band_hz)

        def tiled() -> Iterator[np.ndarray]:
            for b in blocks:
                yield np.tile(b, (variants, 1))

        def process(chunk: np.ndarray, start: int) -> np.ndarray:
            return self._submit([chunk], [start], seed, variants, None, own_edge, highs_db, first_variant)()[0]

        # One worker: the generator call of one group runs while this thread
        # reads, cuts and transforms the next and finishes the previous one.
        with ThreadPoolExecutor(1, "mp3fix-model") if self.pipeline else nullcontext() as pool:

            def submit(chunks: list[np.ndarray], starts: list[int]) -> Callable[[], list[np.ndarray]]:
                return self._submit(chunks, starts, seed, variants, pool, own_edge, highs_db, first_variant)

            for out in stream_overlap_add(process, tiled(), cfg.segment, cfg.overlap, cfg.context,
                                          batch=self.chunk_batch, submit=submit):
                if on_progress is not None:
                    on_progress(out.shape[1])
                yield out

    def restore(self, samples: np.ndarray, sample_rate: int, seed: int = DEFAULT_SEED,
                variants: int = 1, encoder_band_hz: float | None = None,
                encoder_reach_hz: float | None = None, source_band_hz: float | None = None) -> list[np.ndarray]:
        """Restore in-memory audio (C, n) or (n,) at any rate; returns ``variants``
        arrays of shape (C, m) at the model rate (m = n scaled by the rate ratio).
        ``encoder_band_hz``, ``encoder_reach_hz``, ``source_band_hz``: as in :meth:`restore_stream`.

        Float samples are taken as they are (full scale 1.0), integer PCM is
        scaled to that (int16 by 1/32768, ...), and samples that are not
        finite are set to 0, as files are. An array that looks like (n, C)
        (what ``soundfile.read`` returns) is refused: pass its transpose."""
        arr = np.asarray(samples)
        if not (isinstance(sample_rate, (int, float, np.number)) and np.isfinite(sample_rate) and sample_rate > 0
                and float(sample_rate).is_integer()):
            raise ValueError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
        sample_rate = int(sample_rate)
        if arr.ndim > 2:
            raise ValueError(f"samples must be (channels, n) or (n,), got shape {arr.shape}")
        if arr.ndim == 2 and arr.shape[0] > 8 and arr.shape[0] > arr.shape[1]:
            raise ValueError(f"samples of shape {arr.shape} look like (n, channels): pass (channels, n), "
                             "e.g. data.T for what soundfile.read returns")
        if np.issubdtype(arr.dtype, np.integer):
            arr = arr / np.float32(2 ** (8 * arr.dtype.itemsize - 1))
        x = np.atleast_2d(np.asarray(arr, dtype=np.float32))
        if not np.isfinite(x).all():
            x = np.where(np.isfinite(x), x, np.float32(0.0))
        if sample_rate != self.sample_rate:
            # imported here: scipy.signal takes 0.7-1 s to import, and files are
            # resampled by ffmpeg (this is the in-memory path only)
            from scipy.signal import resample_poly

            g = np.gcd(sample_rate, self.sample_rate)
            x = resample_poly(x, self.sample_rate // g, sample_rate // g, axis=-1).astype(np.float32)
        c = x.shape[0]
        if x.shape[1] == 0:
            return [x.copy() for _ in range(variants)]
        stream = self.restore_stream([x], seed, variants, encoder_band_hz=encoder_band_hz,
                                     encoder_reach_hz=encoder_reach_hz, source_band_hz=source_band_hz)
        out = np.concatenate(list(stream), axis=1)
        return [out[v * c : (v + 1) * c] for v in range(variants)]

    def _timed(self, name: str, it: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        while True:
            with self._stage(name):
                item = next(it, None)
            if item is None:
                return
            yield item

    def restore_file(
        self,
        src: str | Path,
        outputs: list[Path],
        seed: int = DEFAULT_SEED,
        bit_depth: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        overwrite: bool = False,
        guard: bool = True,
        source_band_hz: float | None = None,
        highs: Sequence[float] | None = None,
        skip_existing: bool = False,
    ) -> FileResult:
        """Decode ``src``, restore one variant per entry of ``outputs``, write them.

        ``highs``: several levels of the restored band (decibels, as
        ``highs_db``) to write side by side, for a listener to choose from; the
        file is then restored once per level, and ``outputs`` holds, level by
        level, one path per variant (``len(outputs)`` a multiple of
        ``len(highs)``). Each level's outputs are exactly what a restorer with
        that ``highs_db`` writes. None: the restorer's own ``highs_db``.

        ``guard``: leave passages alone whose cliff the file's bitrate says is the
        recording's own edge (:class:`OwnEdge`); False restores
        them too (an MP3 re-encoded from a lower bitrate looks like that).
        ``source_band_hz``: where the recording itself ends, if known
        (:meth:`restore_stream`).

        ``skip_existing``: an output that exists already is kept as it is and
        not written (the others are; the same seed writes the same variants),
        and ``FileResult.outputs`` lists only those written.

        Every output is written to a temporary file and renamed only when all of
        them are complete; on any failure none is left behind. The input is only
        ever read. The input's tags that a WAV or FLAC can hold (title, artist,
        album, date, track number, genre, comment, copyright, license:
        :func:`audio.read_tags`) are copied to each output, whose ``software``
        tag names mp3fix, its version and the highs level (:func:`software_tag`).
        """
        src = Path(src)
        if not outputs:
            raise ValueError("restore_file needs at least one output path")
        levels: list[float | None] = [None] if highs is None else [float(h) for h in highs]
        if not levels or len(outputs) % len(levels):
            raise ValueError(f"{len(outputs)} outputs cannot be shared out among {len(levels)} highs levels")
        if any(h is not None and not np.isfinite(h) for h in levels):
            raise ValueError(f"highs must be finite numbers of decibels, got {highs!r}")
        for out in outputs:
            audio.output_subtype(out, bit_depth)  # check the format before any work
            if out.resolve() == src.resolve():
                raise audio.OutputError(f"{out}: refusing to overwrite the input")
            if out.exists() and not overwrite and not skip_existing:
                raise audio.OutputError(f"{out}: already exists (use --overwrite)")
        kept = {out for out in outputs if skip_existing and out.exists()}
        if len(kept) == len(outputs):
            raise audio.OutputError(f"{outputs[0]}: every output exists already, nothing to write")
        info = audio.probe(src)
        c = info.out_channels
        variants = len(outputs) // len(levels)
        # One pass over the file per level and group of at most VARIANT_GROUP
        # variants (memory grows with the variants a pass restores at once),
        # leaving out the groups whose outputs all exist.
        passes = [(k, level, g0, min(g0 + VARIANT_GROUP, variants))
                  for k, level in enumerate(levels) for g0 in range(0, variants, VARIANT_GROUP)
                  if any(o not in kept for o in outputs[k * variants + g0 : k * variants + g0 + VARIANT_GROUP])]
        total = int(round((info.duration or 0.0) * self.sample_rate)) * len(passes)
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            if on_progress is not None:
                on_progress(done, max(total, done))

        # the input's tags (title, artist, album, ...) go with it, and the output says what made it
        tags = audio.read_tags(src)
        slots = [None if o in kept else
                 audio.AudioWriter(o, self.sample_rate, c, bit_depth,
                                   {**tags, "software": software_tag(self.highs_db if level is None else level)})
                 for k, level in enumerate(levels) for o in outputs[k * variants : (k + 1) * variants]]
        writers = [w for w in slots if w is not None]
        try:
            for w in writers:
                w.open()
            band = info.encoder_band_hz if guard else None
            reach = info.encoder_reach_hz if guard else None
            own_edge_before = self.own_edge_chunks
            own_edge_found = 0
            problems: list[str] = []
            for i, (k, level, g0, g1) in enumerate(passes):
                blocks = self._timed("decode", audio.decode_blocks(info, self.sample_rate,
                                                                   problems=problems if i == 0 else None))
                group = slots[k * variants + g0 : k * variants + g1]
                for out in self.restore_stream(blocks, seed, g1 - g0, progress, band, reach, source_band_hz,
                                               level, first_variant=g0):
                    with self._stage("write"):
                        for v, w in enumerate(group):
                            if w is not None:
                                w.write(out[v * c : (v + 1) * c])
                if i == 0:  # every pass leaves the same passages alone: count them once
                    own_edge_found = self.own_edge_chunks - own_edge_before
            for w in writers:  # every output complete before any is renamed into place
                w.finish()
            for w in writers:
                w.commit()
        except BaseException:
            for w in writers:
                w.abort()
            raise
        notes = list(problems)
        if problems and info.duration and info.duration - writers[0].frames / self.sample_rate > 0.5:
            notes.append(f"{writers[0].frames / self.sample_rate:.1f} s decoded of the {info.duration:.1f} s "
                         "the file says it holds")
        if own_edge_found and band:
            notes.append(f"the recording itself ends below the {band / 1000:.1f} kHz "
                         f"a {info.bitrate_kbps} kbit/s MP3 keeps: "
                         f"{own_edge_found} passage(s) left as they are "
                         "(--ignore-bitrate restores them)")
        if info.downmixed:
            notes.append(f"{info.channels} channels downmixed to stereo")
        if info.codec in audio.UNTIMED_CODECS:
            notes.append("WMA holds no encoder delay ffmpeg reads: the output may start up to 0.1 s "
                         "early or late against the original")
        clipped = sum(w.clipped for w in writers)
        if clipped:
            notes.append(f"{clipped} samples clipped at full scale (write float WAV to keep them)")
        return FileResult(src, [w.path for w in writers], writers[0].frames / self.sample_rate, info.sample_rate,
                          c, clipped, notes)
