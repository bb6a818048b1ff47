"""onnxruntime: provider choice, session options, running the generator.

This is the only place mp3fix touches an inference engine.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mp3fix.errors import DeviceError, ModelError
from mp3fix.model import ModelConfig, load_config

DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# cuDNN's convolution algorithm search: onnxruntime's default, EXHAUSTIVE, times
# every algorithm for every new input shape, and the chunks of a song come in a
# few shapes: on an H100 the first 3-minute restore took 2.43 s with it and 1.37 s
# with HEURISTIC, later ones 1.53 and 1.28 s (scripts/gpu-tune.py). DEFAULT was
# as fast but runs every convolution "in Fallback mode" with a warning each.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}
CUDA_FELL_BACK = "CUDA is not usable here (onnxruntime fell back to CPU); running on CPU"


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def choose_providers(device: str, available: list[str] | None = None) -> list[str]:
    """Providers for ``device``: an explicit choice wins, CPU always comes last.

    ``auto`` takes CUDA when onnxruntime offers it; ``cuda`` without a CUDA
    provider is an error that says how to get one.
    """
    avail = available_providers() if available is None else available
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r} (choose auto, cpu or cuda)")
    has_cuda = CUDA in avail
    if device == "cuda" and not has_cuda:
        raise DeviceError(
            "CUDA was requested but this onnxruntime has no CUDA provider: "
            "install mp3fix's gpu extra, pip install '.[gpu]' in its folder (it replaces onnxruntime "
            "with onnxruntime-gpu)"
        )
    if device in ("auto", "cuda") and has_cuda:
        return [CUDA, CPU]
    return [CPU]


def preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries onnxruntime-gpu needs, where pip put them.

    onnxruntime-gpu's CUDA provider finds libcublas, libcudnn and the rest only
    where the dynamic loader looks; ``pip install onnxruntime-gpu[cuda,cudnn]``
    puts them in site-packages/nvidia, where it does not, and onnxruntime can
    then fall back to CPU unless torch was imported first (onnxruntime's
    documentation; the lent GPU machine had CUDA on the loader path, so this
    was not seen there). ``onnxruntime.preload_dlls`` (1.21+) loads them from
    site-packages. Its warnings go
    to stdout, which is the user's, so they are dropped: whether CUDA works is
    told by the session's providers afterwards.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()):
        preload()


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


MAX_ROWS = 8  # rows (channels x variants x chunks) in one onnxruntime call


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, int]]:
    """The fixed sizes (channels, frequency rows) of each generator input and output
    as the sidecar describes them; batch and time are free."""
    shapes = {"logmag": (1, cfg.n_bins), "mask": (1, cfg.n_bins), "z": (cfg.z_channels, cfg.z_bins),
              "copied": (1, cfg.n_bins)}
    return {**{n: shapes[n] for n in cfg.input_names if n in shapes},
            **{n: (1, cfg.n_bins) for n in cfg.output_names}}


def check_shapes(session: ort.InferenceSession, cfg: ModelConfig, path: Path) -> None:
    """ModelError unless the ONNX graph's inputs and outputs are the ones its sidecar
    names, with the sizes it gives (a sidecar beside the wrong model would
    otherwise fail deep inside onnxruntime at the first chunk)."""
    names = [i.name for i in session.get_inputs()]
    if names != cfg.input_names:
        raise ModelError(f"model {path}: its inputs {names} do not match its sidecar's {cfg.input_names}")
    outputs = [o.name for o in session.get_outputs()]
    if not set(cfg.output_names) <= set(outputs):
        raise ModelError(f"model {path}: its outputs {outputs} do not match its sidecar's {cfg.output_names}")
    want = expected_shapes(cfg)
    for arg in [*session.get_inputs(), *session.get_outputs()]:
        if arg.name not in want or len(arg.shape) != 4:
            continue
        for axis, size in zip((1, 2), want[arg.name], strict=True):
            got = arg.shape[axis]
            if isinstance(got, int) and got != size:
                raise ModelError(f"model {path}: its {arg.name!r} has {got} where its sidecar says {size} "
                                 f"(axis {axis}): the sidecar is not this model's")


class Generator:
    """An ONNX generator plus its sidecar settings.

    ``notice`` is a one-line message for the user when the device differs from
    what was asked in a way that is not an error (``auto`` chose CUDA, but
    onnxruntime could not use it), else None.
    """

    def __init__(self, path: Path, device: str = "auto", threads: int | None = None, spin: bool = True) -> None:
        self.path = Path(path)
        self.config: ModelConfig = load_config(self.path)
        self.providers = choose_providers(device)
        self.notice: str | None = None
        opts = ort.SessionOptions()
        n = threads or default_threads()
        opts.intra_op_num_threads = n
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Activations of a trained model on real music underflow to denormals,
        # which the CPU handles slowly: flushing them to zero made the model
        # stage 20% faster (0.173 -> 0.140 s per stereo chunk) and changes
        # nothing above 1e-38.
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
        if not spin:
            # onnxruntime's threads busy-wait between operators by default; when
            # the caller's own thread has DSP to do meanwhile (Restorer's
            # pipeline), that steals its core: a 3-minute song's library call
            # took 1.24-1.30 s with spinning and 1.01-1.03 s without (band
            # generator, 2 threads on 2 cores; U-Net 2.44-2.51 and 2.19-2.26 s).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.providers[0] == CUDA:
            preload_cuda_libraries()
        try:
            providers = [(p, CUDA_OPTIONS) if p == CUDA else p for p in self.providers]
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
            raise ModelError(f"cannot load model {self.path}: {str(exc).splitlines()[0]}") from exc
        if self.providers[0] == CUDA and self.session.get_providers()[0] != CUDA:
            # onnxruntime-gpu lists CUDA whenever it was built with it; without a
            # usable driver or CUDA/cuDNN libraries it logs an error and quietly
            # builds a CPU session instead.
            if device == "cuda":
                raise DeviceError(
                    "CUDA was requested but onnxruntime could not use it and fell back to CPU: "
                    "check the NVIDIA driver and the CUDA and cuDNN libraries onnxruntime-gpu needs "
                    "(or use --device cpu)"
                )
            self.notice = CUDA_FELL_BACK
        check_shapes(self.session, self.config, self.path)

    @property
    def device(self) -> str:
        return "cuda" if self.session.get_providers()[0] == CUDA else "cpu"

    def __call__(self, logmag: np.ndarray, mask: np.ndarray, z: np.ndarray,
                 copied: np.ndarray | None = None) -> np.ndarray:
        """(N,1,F,T) log-magnitude, mask, (N,Z,F,T) noise and, for models that take
        it (see the sidecar's input_names), the band-replicated log-magnitude
        -> (N,1,F,T). Pads T to the model's multiple and crops the result."""
        cfg = self.config
        t = logmag.shape[-1]
        pad = (-t) % cfg.time_multiple
        floor = np.float32(np.log(cfg.log_floor))
        arrays = {"logmag": logmag, "mask": mask, "z": z, "copied": copied if copied is not None else logmag}
        if pad:
            fill = {"logmag": floor, "copied": floor, "z": 0.0}
            for name, arr in arrays.items():
                tail = (np.repeat(arr[..., -1:], pad, -1) if name == "mask"
                        else np.full(arr.shape[:-1] + (pad,), fill[name], np.float32))
                arrays[name] = np.concatenate([arr, tail], -1)
        feeds = {name: arrays[name] for name in cfg.input_names}
        n = logmag.shape[0]
        try:
            # At most MAX_ROWS rows a call: onnxruntime keeps memory for the largest
            # batch it has seen (about 50 MB a row with the shipped model), and
            # rows are independent, so --variants 32 costs no more model memory
            # than --variants 4 and the output is the same.
            outs = [self.session.run(cfg.output_names, {k: v[i : i + MAX_ROWS] for k, v in feeds.items()})[0]
                    for i in range(0, n, MAX_ROWS)]
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
            raise ModelError(f"model {self.path} failed: {str(exc).splitlines()[0]}") from exc
        out = outs[0] if len(outs) == 1 else np.concatenate(outs)
        return out[..., :t]
