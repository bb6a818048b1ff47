"""Chunked overlap-add inference over long or streamed audio.

This module owns how a track of any length (possibly arriving block by block,
total length unknown until the end) is cut into fixed-size model chunks with
real audio context on both sides, and how the per-chunk outputs are
crossfaded back into one seamless signal of exactly the input length.
It is pure numpy: the model is just a ``process(chunk, start)`` callable.

Layout, with ``step = segment - overlap``: chunk ``k`` owns the output region
``[k*step, k*step + segment)``; the model sees
``[k*step - context, k*step + segment + context)`` (zeros only outside the
track) and its output for the context parts is thrown away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

Process = Callable[[np.ndarray, int], np.ndarray]


def _check_args(segment: int, overlap: int, context: int) -> None:
    for name, v in (("segment", segment), ("overlap", overlap), ("context", context)):
        # bool is an int subclass, but passing True as a size is surely a bug.
        # ValueError (not TypeError) so callers catch every bad-argument case alike.
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an int, got {v!r}")  # noqa: TRY004
    if not segment > overlap >= 0:
        raise ValueError(f"need segment > overlap >= 0, got {segment=} {overlap=}")
    if context < 0:
        raise ValueError(f"need context >= 0, got {context=}")


def chunk_starts(n_samples: int, segment: int, overlap: int) -> list[int]:
    """Output-region starts ``k*step``: one entry per ``process`` call."""
    _check_args(segment, overlap, 0)
    if n_samples <= 0:
        return []
    step = segment - overlap
    # The last chunk is the first k with k*step + segment >= n_samples.
    n_chunks = 1 + max(0, -(-(n_samples - segment) // step))
    return [k * step for k in range(n_chunks)]


def stream_overlap_add(
    process: Process,
    blocks: Iterable[np.ndarray],
    segment: int,
    overlap: int,
    context: int,
) -> Iterator[np.ndarray]:
    """Run ``process`` over a stream of (channels, n) blocks; yield final output blocks.

    Arguments are validated here, eagerly, rather than on first ``next()``.
    """
    _check_args(segment, overlap, context)
    return _stream(process, blocks, int(segment), int(overlap), int(context))


def _stream(
    process: Process,
    blocks: Iterable[np.ndarray],
    segment: int,
    overlap: int,
    context: int,
) -> Iterator[np.ndarray]:
    step = segment - overlap
    width = context + segment + context
    fade_in = ((np.arange(overlap) + 0.5) / overlap).astype(np.float32)
    fade_out = np.float32(1.0) - fade_in  # complementary: weights sum to 1
    buf = np.zeros((0, 0), np.float32)  # input from absolute sample buf_start on
    buf_start = 0
    # Blocks not yet joined onto buf: joined once per chunk, because concatenating
    # on every (possibly tiny) block would be quadratic.
    pending: list[np.ndarray] = []
    received = 0
    channels: int | None = None
    tail: np.ndarray | None = None  # previous chunk's un-faded overlap output

    def run(k: int, avail: int, total: int | None) -> np.ndarray:
        """Process chunk k and return the output samples that are now final."""
        nonlocal buf, buf_start, pending, tail
        if pending:
            buf = np.concatenate([buf, *pending], axis=-1)
            pending = []
        lo = k * step - context
        chunk = np.zeros((buf.shape[0], width), np.float32)
        a = max(lo, 0)
        b = max(a, min(lo + width, avail))
        chunk[:, a - lo : b - lo] = buf[:, a - buf_start : b - buf_start]
        out = np.asarray(process(chunk, lo), dtype=np.float32)
        if out.shape != chunk.shape:
            raise ValueError(
                f"process returned shape {out.shape}, expected {chunk.shape}"
            )
        # Copy: we blend in place and must not mutate the caller's array.
        y = np.array(out[:, context : context + segment])
        if tail is not None and overlap:
            y[:, :overlap] = tail * fade_out + y[:, :overlap] * fade_in
        # The overlap tail stays pending until we know whether a next chunk exists
        # (the last chunk gets no fade-out).
        tail = y[:, step:]
        # Drop input that no later chunk can need, to keep memory bounded.
        keep = max((k + 1) * step - context, 0)
        buf, buf_start = buf[:, keep - buf_start :], keep
        end = step if total is None else min(step, total - k * step)
        return y[:, :end]

    k = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or (channels is not None and block.shape[0] != channels):
            raise ValueError(
                f"blocks must be (channels, n), constant channels; got {block.shape}"
            )
        if channels is None:
            channels = block.shape[0]
            buf = np.zeros((channels, 0), np.float32)
        pending.append(block)
        received += block.shape[1]
        # A chunk with its full right context available proves the track goes on
        # past its first `step` samples, so those can be emitted right away.
        while received >= k * step + segment + context:
            yield run(k, received, None)
            k += 1

    n = received  # stream exhausted: the total length is known now
    if n == 0:
        return
    while k == 0 or (k - 1) * step + segment < n:  # previous chunk was not the last
        out = run(k, n, n)
        if out.shape[1]:
            yield out
        k += 1
    assert tail is not None
    rest = tail[:, : max(0, n - k * step)]  # last chunk's tail starts at k*step
    if rest.shape[1]:
        yield rest


def overlap_add(
    process: Process, audio: np.ndarray, segment: int, overlap: int, context: int
) -> np.ndarray:
    """Whole-array convenience wrapper around :func:`stream_overlap_add`."""
    audio = np.asarray(audio, dtype=np.float32)
    parts = list(stream_overlap_add(process, [audio], segment, overlap, context))
    if not parts:
        return np.zeros((audio.shape[0], 0), np.float32)
    return np.concatenate(parts, axis=-1)
