"""Chunked overlap-add inference over long or streamed audio.

This module owns how a track of any length (possibly arriving block by block,
total length unknown until the end) is cut into fixed-size model chunks with
real audio context on both sides, and how the per-chunk outputs are
crossfaded back into one seamless signal of exactly the input length.
It is pure numpy: the model is just a ``process(chunk, start)`` callable, or a
``process_many(chunks, starts)`` one that takes up to ``batch`` chunks at once.

Layout, with ``step = segment - overlap``: chunk ``k`` owns the output region
``[k*step, k*step + segment)``; the model sees
``[k*step - context, k*step + segment + context)`` (zeros only outside the
track) and its output for the context parts is thrown away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

Process = Callable[[np.ndarray, int], np.ndarray]
# Several chunks at once (a GPU is fed far better by one big batch than by many
# small ones): the chunks and their starts, in order -> one output per chunk.
ProcessMany = Callable[[list[np.ndarray], list[int]], list[np.ndarray]]
# The same, started now and finished later: returns a function that waits for the
# outputs. Lets the model of one group run (on another thread or a GPU) while the
# caller decodes, cuts and finishes the neighbouring groups.
Submit = Callable[[list[np.ndarray], list[int]], Callable[[], list[np.ndarray]]]


def _check_args(segment: int, overlap: int, context: int, batch: int = 1) -> None:
    for name, v in (("segment", segment), ("overlap", overlap), ("context", context), ("batch", batch)):
        # bool is an int subclass, but passing True as a size is surely a bug.
        # ValueError (not TypeError) so callers catch every bad-argument case alike.
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an int, got {v!r}")  # noqa: TRY004
    if not segment > overlap >= 0:
        raise ValueError(f"need segment > overlap >= 0, got {segment=} {overlap=}")
    if context < 0:
        raise ValueError(f"need context >= 0, got {context=}")
    if batch < 1:
        raise ValueError(f"need batch >= 1, got {batch=}")


def chunk_starts(n_samples: int, segment: int, overlap: int) -> list[int]:
    """Output-region starts ``k*step``: one entry per chunk."""
    _check_args(segment, overlap, 0)
    if n_samples <= 0:
        return []
    step = segment - overlap
    # The last chunk is the first k with k*step + segment >= n_samples.
    n_chunks = 1 + max(0, -(-(n_samples - segment) // step))
    return [k * step for k in range(n_chunks)]


def _one_by_one(process: Process) -> ProcessMany:
    def many(chunks: list[np.ndarray], starts: list[int]) -> list[np.ndarray]:
        return [process(c, s) for c, s in zip(chunks, starts, strict=True)]

    return many


def stream_overlap_add(
    process: Process,
    blocks: Iterable[np.ndarray],
    segment: int,
    overlap: int,
    context: int,
    *,
    batch: int = 1,
    process_many: ProcessMany | None = None,
    submit: Submit | None = None,
) -> Iterator[np.ndarray]:
    """Run ``process`` over a stream of (channels, n) blocks; yield final output blocks.

    With ``batch`` > 1, up to ``batch`` chunks whose input is complete are cut
    out first and then run together. ``process_many(chunks, starts)``, when
    given, runs every group (of 1 to ``batch`` chunks, in order) and returns
    one output per chunk; without it ``process`` runs them one at a time. The
    output does not depend on ``batch``: only up to ``batch`` chunk inputs are
    held at once, and output lags input by up to ``batch`` chunks.

    ``submit(chunks, starts)``, when given, is used instead of ``process_many``
    and returns a function that delivers the outputs: each group is submitted
    before the previous group's outputs are collected, so one group's model
    can run while the next is read and cut and the previous one is finished.
    The output is the same; one more group (up to ``batch`` chunks) is in
    flight, and output lags input by one more group.

    Arguments are validated here, eagerly, rather than on first ``next()``.
    """
    _check_args(segment, overlap, context, batch)
    if submit is None:
        many = process_many if process_many is not None else _one_by_one(process)

        def submit(chunks: list[np.ndarray], starts: list[int]) -> Callable[[], list[np.ndarray]]:
            outs = many(chunks, starts)
            return lambda: outs

        pipelined = False
    else:
        pipelined = True
    return _stream(submit, blocks, int(segment), int(overlap), int(context), int(batch), pipelined)


def _stream(
    submit: Submit,
    blocks: Iterable[np.ndarray],
    segment: int,
    overlap: int,
    context: int,
    batch: int,
    pipelined: bool,
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
    ready: list[tuple[int, np.ndarray]] = []  # (k, input) of chunks cut but not yet run
    # the group submitted last and not yet collected: (group, collect, total)
    flight: tuple[list[tuple[int, np.ndarray]], Callable[[], list[np.ndarray]], int | None] | None = None

    def cut(k: int, avail: int) -> None:
        """Copy chunk k's input (zeros outside [0, avail)) into ``ready``."""
        nonlocal buf, buf_start, pending
        if pending:
            buf = np.concatenate([buf, *pending], axis=-1)
            pending = []
        lo = k * step - context
        chunk = np.zeros((buf.shape[0], width), np.float32)
        a = max(lo, 0)
        b = max(a, min(lo + width, avail))
        chunk[:, a - lo : b - lo] = buf[:, a - buf_start : b - buf_start]
        ready.append((k, chunk))
        # The chunk holds a copy: drop input that no later chunk can need, to
        # keep memory bounded.
        keep = max((k + 1) * step - context, 0)
        buf, buf_start = buf[:, keep - buf_start :], keep

    def run(total: int | None) -> Iterator[np.ndarray]:
        """Submit the ready chunks as one group; yield the output samples now final
        (this group's, or with ``pipelined`` the previous group's)."""
        nonlocal flight
        group = list(ready)
        ready.clear()
        collect = submit([c for _, c in group], [k * step - context for k, _ in group])
        previous, flight = flight, (group, collect, total)
        if previous is not None:
            yield from emit(*previous)
        if not pipelined:
            yield from drain()

    def drain() -> Iterator[np.ndarray]:
        """Collect and emit the group still in flight, if any."""
        nonlocal flight
        previous, flight = flight, None
        if previous is not None:
            yield from emit(*previous)

    def emit(group: list[tuple[int, np.ndarray]], collect: Callable[[], list[np.ndarray]],
             total: int | None) -> Iterator[np.ndarray]:
        """Crossfade one group's outputs into the stream; yield what is final."""
        nonlocal tail
        outs = collect()
        if len(outs) != len(group):
            raise ValueError(f"process_many returned {len(outs)} outputs for {len(group)} chunks")
        for (k, chunk), out in zip(group, outs, strict=True):
            out = np.asarray(out, dtype=np.float32)
            if out.shape != chunk.shape:
                raise ValueError(
                    f"process returned shape {out.shape}, expected {chunk.shape}"
                )
            # Copy: we blend in place and must not mutate the caller's array.
            y = np.array(out[:, context : context + segment])
            if tail is not None and overlap:
                y[:, :overlap] = tail * fade_out + y[:, :overlap] * fade_in
            # The overlap tail stays pending until we know whether a next chunk
            # exists (the last chunk gets no fade-out).
            tail = y[:, step:]
            end = step if total is None else min(step, total - k * step)
            if end > 0:
                yield y[:, :end]

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
            cut(k, received)
            k += 1
            if len(ready) == batch:
                yield from run(None)

    n = received  # stream exhausted: the total length is known now
    if n == 0:
        return
    while k == 0 or (k - 1) * step + segment < n:  # previous chunk was not the last
        cut(k, n)
        k += 1
        if len(ready) == batch:
            yield from run(n)
    if ready:
        yield from run(n)
    yield from drain()
    assert tail is not None
    rest = tail[:, : max(0, n - k * step)]  # last chunk's tail starts at k*step
    if rest.shape[1]:
        yield rest


def overlap_add(
    process: Process,
    audio: np.ndarray,
    segment: int,
    overlap: int,
    context: int,
    *,
    batch: int = 1,
    process_many: ProcessMany | None = None,
) -> np.ndarray:
    """Whole-array convenience wrapper around :func:`stream_overlap_add`."""
    audio = np.asarray(audio, dtype=np.float32)
    parts = list(stream_overlap_add(process, [audio], segment, overlap, context,
                                    batch=batch, process_many=process_many))
    if not parts:
        return np.zeros((audio.shape[0], 0), np.float32)
    return np.concatenate(parts, axis=-1)
