"""Tests for mp3fix.chunking: chunk layout, real context, crossfade, streaming."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from mp3fix.chunking import chunk_starts, overlap_add, stream_overlap_add

SEG, OV, CTX = 64, 16, 24
# (segment, overlap, context): the default small layout plus edge layouts.
LAYOUTS = [(SEG, OV, CTX), (64, 0, 0), (64, 0, 24), (64, 16, 0), (10, 9, 3), (8, 3, 40)]
LENGTHS = [1, SEG - 1, SEG, SEG + 1, 10 * SEG + 37]
IRREGULAR = [1, 7, 1000, 0, 3, 64, 2, 0, 129, 17]


def _audio(channels: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, n)).astype(np.float32)


def _split(audio: np.ndarray, sizes: list[int]) -> Iterator[np.ndarray]:
    """Yield audio in blocks cycling through `sizes` (0-sized blocks included)."""
    pos, i = 0, 0
    while pos < audio.shape[1]:
        size = sizes[i % len(sizes)]
        yield audio[:, pos : pos + size]
        pos, i = pos + size, i + 1


def _run(process, audio, layout, blocks: str) -> np.ndarray:
    seg, ov, ctx = layout
    if blocks == "whole":
        return overlap_add(process, audio, seg, ov, ctx)
    parts = list(stream_overlap_add(process, _split(audio, IRREGULAR), seg, ov, ctx))
    for p in parts:
        assert p.dtype == np.float32 and p.shape[0] == audio.shape[0]
    return np.concatenate(parts, axis=-1) if parts else audio[:, :0]


class Recorder:
    """Identity process that checks every chunk against the true, padded audio."""

    def __init__(self, audio: np.ndarray, context: int, segment: int) -> None:
        self.width = 2 * context + segment
        # Zero padding on both sides = "zeros only outside the track".
        pad = context + self.width
        self.padded = np.pad(audio, ((0, 0), (pad, pad)))
        self.pad = pad
        self.starts: list[int] = []

    def __call__(self, chunk: np.ndarray, start: int) -> np.ndarray:
        assert chunk.dtype == np.float32
        assert chunk.shape == (self.padded.shape[0], self.width)
        expected = self.padded[:, self.pad + start : self.pad + start + self.width]
        np.testing.assert_array_equal(chunk, expected)
        self.starts.append(start)
        return chunk.copy()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("blocks", ["whole", "irregular"])
def test_identity_roundtrip_and_chunk_layout(layout, n, channels, blocks):
    seg, ov, ctx = layout
    audio = _audio(channels, n)
    rec = Recorder(audio, ctx, seg)
    out = _run(rec, audio, layout, blocks)
    assert out.shape == (channels, n)
    np.testing.assert_allclose(out, audio, atol=1e-6)
    # One process call per chunk_starts entry, each fed real context at k*step-ctx.
    assert rec.starts == [s - ctx for s in chunk_starts(n, seg, ov)]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("blocks", ["whole", "irregular"])
def test_outputs_land_at_their_absolute_position(layout, n, blocks):
    # Each chunk outputs its own absolute sample indices; any misalignment of the
    # discarded context or of the overlap region shows up as a wrong value.
    def position(chunk: np.ndarray, start: int) -> np.ndarray:
        pos = (start + np.arange(chunk.shape[1])).astype(np.float32)
        return np.broadcast_to(pos, chunk.shape)

    out = _run(position, _audio(2, n), layout, blocks)
    np.testing.assert_allclose(out, np.broadcast_to(np.arange(n), (2, n)), atol=1e-3)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", LENGTHS)
def test_constant_output_means_weights_sum_to_one(layout, n):
    out = _run(lambda c, s: np.ones_like(c), _audio(2, n), layout, "irregular")
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


def test_crossfade_is_linear_ramp_without_end_fades():
    # Chunk k outputs the constant k: the first chunk must not fade in, the last
    # must not fade out, and overlaps ramp linearly between neighbours.
    n = 3 * SEG
    out = overlap_add(
        lambda c, s: np.full_like(c, (s + CTX) // (SEG - OV)),
        _audio(1, n),
        SEG,
        OV,
        CTX,
    )[0]
    step = SEG - OV
    ramp = (np.arange(OV) + 0.5) / OV
    np.testing.assert_allclose(out[:step], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[step : step + OV], ramp, atol=1e-6)
    np.testing.assert_allclose(out[step + OV : 2 * step], 1.0, atol=1e-6)
    last = len(chunk_starts(n, SEG, OV)) - 1
    assert out[-1] == last


def test_real_sizes_smoke():
    seg, ov, ctx = 768 * 512, 16 * 512, 64 * 512
    n = 2 * seg + 1234
    audio = _audio(2, n)
    calls = []

    def ident(chunk: np.ndarray, start: int) -> np.ndarray:
        calls.append(start)
        return chunk

    out = overlap_add(ident, audio, seg, ov, ctx)
    np.testing.assert_allclose(out, audio, atol=1e-6)
    assert len(calls) == len(chunk_starts(n, seg, ov)) == 3


def test_stream_is_lazy():
    consumed = 0

    def blocks() -> Iterator[np.ndarray]:
        nonlocal consumed
        for _ in range(100):
            consumed += 1
            yield np.ones((2, 16), np.float32)

    gen = stream_overlap_add(lambda c, s: c, blocks(), SEG, OV, CTX)
    first = next(gen)
    # Chunk 0 needs SEG + CTX = 88 samples = 6 blocks of 16.
    assert consumed == 6
    assert first.shape == (2, SEG - OV)
    # Output keeps pace with input instead of piling up until the end.
    got = first.shape[1]
    for block in gen:
        assert consumed * 16 - got <= SEG + CTX + 16
        got += block.shape[1]
    assert got == 100 * 16


def test_empty_input():
    calls = []

    def proc(c: np.ndarray, s: int) -> np.ndarray:
        calls.append(s)
        return c

    assert list(stream_overlap_add(proc, [], SEG, OV, CTX)) == []
    assert (
        list(stream_overlap_add(proc, [np.zeros((2, 0), np.float32)] * 3, 8, 2, 1))
        == []
    )
    out = overlap_add(proc, np.zeros((2, 0), np.float32), SEG, OV, CTX)
    assert out.shape == (2, 0) and out.dtype == np.float32
    assert calls == [] and chunk_starts(0, SEG, OV) == []


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, []), (1, [0]), (64, [0]), (65, [0, 48]), (112, [0, 48]), (113, [0, 48, 96])],
)
def test_chunk_starts(n, expected):
    assert chunk_starts(n, 64, 16) == expected


@pytest.mark.parametrize(
    ("segment", "overlap", "context"),
    [
        (16, 16, 0),  # overlap must be < segment
        (16, 20, 0),
        (0, 0, 0),
        (16, -1, 0),
        (16, 4, -1),
        (16.0, 4, 0),
        (16, 4.0, 0),
        (16, 4, 2.5),
        (16, True, 0),
        ("16", 4, 0),
    ],
)
def test_invalid_args_raise(segment, overlap, context):
    def ident(c, s):
        return c
    # Raised at call time, not deferred to the first next().
    with pytest.raises(ValueError):
        stream_overlap_add(ident, [], segment, overlap, context)
    with pytest.raises(ValueError):
        overlap_add(ident, np.zeros((1, 5), np.float32), segment, overlap, context)
    if context == 0:  # the bad value is in segment/overlap, which chunk_starts checks
        with pytest.raises(ValueError):
            chunk_starts(5, segment, overlap)


def test_bad_process_output_or_blocks_raise():
    audio = _audio(2, 100)
    with pytest.raises(ValueError):
        overlap_add(lambda c, s: c[:, 1:], audio, SEG, OV, CTX)
    with pytest.raises(ValueError):
        list(stream_overlap_add(lambda c, s: c, [audio, _audio(1, 10)], SEG, OV, CTX))
    with pytest.raises(ValueError):
        list(
            stream_overlap_add(lambda c, s: c, [np.zeros(10, np.float32)], SEG, OV, CTX)
        )


# ---------------------------------------------------------------- batching


def _warp(chunk: np.ndarray, start: int) -> np.ndarray:
    """A process whose output depends on both the input and its absolute position."""
    pos = (start + np.arange(chunk.shape[1])).astype(np.float32)
    return chunk * (1 + 1e-3 * pos) + np.sin(0.01 * pos)


class Batcher:
    """process_many built from a per-chunk process; records the group sizes and starts."""

    def __init__(self, process) -> None:
        self.process = process
        self.groups: list[int] = []
        self.starts: list[int] = []

    def __call__(self, chunks: list[np.ndarray], starts: list[int]) -> list[np.ndarray]:
        assert len(chunks) == len(starts) and chunks
        self.groups.append(len(chunks))
        self.starts += starts
        return [self.process(c, s) for c, s in zip(chunks, starts, strict=True)]


@pytest.mark.parametrize("batch", [1, 2, 3, 7])
@pytest.mark.parametrize("layout", [(SEG, OV, CTX), (64, 0, 0), (10, 9, 3), (8, 3, 40)])
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("process", [lambda c, s: c.copy(), _warp], ids=["identity", "warp"])
def test_batching_does_not_change_the_output(batch, layout, n, process):
    seg, ov, ctx = layout
    audio = _audio(2, n, seed=n)
    expected = overlap_add(process, audio, seg, ov, ctx)
    for blocks in ("whole", "irregular"):
        many = Batcher(process)
        source = [audio] if blocks == "whole" else _split(audio, IRREGULAR)
        parts = list(stream_overlap_add(process, source, seg, ov, ctx, batch=batch, process_many=many))
        np.testing.assert_array_equal(np.concatenate(parts, axis=-1), expected)
        # every chunk exactly once, in order; groups are full except the last
        assert many.starts == [s - ctx for s in chunk_starts(n, seg, ov)]
        assert all(g == batch for g in many.groups[:-1]) and 1 <= many.groups[-1] <= batch
        # without process_many, batch only groups the calls to process
        np.testing.assert_array_equal(overlap_add(process, audio, seg, ov, ctx, batch=batch), expected)


def test_batched_stream_holds_at_most_batch_chunks():
    consumed = 0

    def blocks() -> Iterator[np.ndarray]:
        nonlocal consumed
        for _ in range(100):
            consumed += 1
            yield np.ones((2, 16), np.float32)

    batch, step = 3, SEG - OV
    gen = stream_overlap_add(lambda c, s: c, blocks(), SEG, OV, CTX, batch=batch,
                             process_many=lambda cs, ss: list(cs))
    got = 0
    for block in gen:
        # input runs ahead of output by at most `batch` chunks (plus one block)
        assert consumed * 16 - got <= SEG + CTX + (batch - 1) * step + 16
        got += block.shape[1]
    assert got == 100 * 16


@pytest.mark.parametrize("batch", [0, -1, 2.0, True, "3"])
def test_invalid_batch_raises(batch):
    with pytest.raises(ValueError, match="batch"):
        stream_overlap_add(lambda c, s: c, [], SEG, OV, CTX, batch=batch)


def test_process_many_must_return_one_output_per_chunk():
    audio = _audio(1, 5 * SEG)
    with pytest.raises(ValueError, match="outputs"):
        overlap_add(lambda c, s: c, audio, SEG, OV, CTX, batch=2, process_many=lambda cs, ss: cs[:1])
    with pytest.raises(ValueError, match="shape"):
        overlap_add(lambda c, s: c, audio, SEG, OV, CTX, batch=2,
                    process_many=lambda cs, ss: [c[:, 1:] for c in cs])


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("n", [1, SEG - 1, 5 * SEG + 17])
def test_pipelined_submit_gives_the_same_output_one_group_ahead(batch, n):
    """With ``submit``, group g+1 is submitted before group g is collected (so its
    model can run meanwhile), every group is collected once, in order, and the
    output is exactly that of ``process_many``."""
    audio = _audio(2, n, seed=3)
    expected = overlap_add(_warp, audio, SEG, OV, CTX)
    events: list[tuple[str, int]] = []

    def submit(chunks, starts):
        g = sum(1 for e in events if e[0] == "submit")
        events.append(("submit", g))
        outs = [_warp(c, s) for c, s in zip(chunks, starts, strict=True)]

        def collect():
            events.append(("collect", g))
            return outs

        return collect

    parts = list(stream_overlap_add(_warp, _split(audio, IRREGULAR), SEG, OV, CTX, batch=batch, submit=submit))
    np.testing.assert_array_equal(np.concatenate(parts, axis=-1), expected)
    groups = sum(1 for e in events if e[0] == "submit")
    assert groups == -(-len(chunk_starts(n, SEG, OV)) // batch)
    assert [g for kind, g in events if kind == "collect"] == list(range(groups))
    for g in range(groups - 1):
        assert events.index(("submit", g + 1)) < events.index(("collect", g))


def test_pipelined_error_in_collect_propagates():
    def submit(chunks, starts):
        def collect():
            raise RuntimeError("model failed")

        return collect

    with pytest.raises(RuntimeError, match="model failed"):
        list(stream_overlap_add(lambda c, s: c, [_audio(1, 4 * SEG)], SEG, OV, CTX, submit=submit))
