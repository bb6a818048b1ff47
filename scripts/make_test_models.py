"""Write the tiny ONNX generators the tests use (no torch needed; uses onnx.helper).

    python scripts/make_test_models.py   # writes tests/data/{identity,fill}.onnx(.json)

- ``identity``: restored = logmag. Lets tests check that the whole pipeline
  (decode, STFT, chunking, phase, iSTFT, write) reconstructs its input.
- ``fill``: restored = (1-mask)*logmag + mask*(LEVEL + 0.5*z[:,0]). A stand-in
  "restorer" that adds z-dependent energy above the cutoff only, so tests can
  check seeds, variants and that the intact band is untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from mp3fix.model import ModelConfig, sha256_of

OUT = Path(__file__).resolve().parent.parent / "tests" / "data"
LEVEL = -7.0


def _io(cfg: ModelConfig) -> tuple[list, list]:
    dims = ["batch", 1, cfg.n_bins, "frames"]
    inputs = [
        helper.make_tensor_value_info("logmag", TensorProto.FLOAT, dims),
        helper.make_tensor_value_info("mask", TensorProto.FLOAT, dims),
        helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", cfg.z_channels, cfg.n_bins, "frames"]),
    ]
    inputs.append(helper.make_tensor_value_info("copied", TensorProto.FLOAT, dims))  # unused by both
    outputs = [helper.make_tensor_value_info("restored", TensorProto.FLOAT, dims)]
    return inputs, outputs


def identity(cfg: ModelConfig) -> onnx.ModelProto:
    inputs, outputs = _io(cfg)
    nodes = [helper.make_node("Identity", ["logmag"], ["restored"])]
    return helper.make_model(helper.make_graph(nodes, "identity", inputs, outputs),
                             opset_imports=[helper.make_opsetid("", 17)])


def fill(cfg: ModelConfig) -> onnx.ModelProto:
    inputs, outputs = _io(cfg)
    c = [
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("level", TensorProto.FLOAT, [], [LEVEL]),
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    nodes = [
        helper.make_node("Slice", ["z", "starts", "ends", "axes"], ["z0"]),
        helper.make_node("Mul", ["z0", "half"], ["zs"]),
        helper.make_node("Add", ["zs", "level"], ["pred"]),
        helper.make_node("Sub", ["one", "mask"], ["keep"]),
        helper.make_node("Mul", ["keep", "logmag"], ["a"]),
        helper.make_node("Mul", ["mask", "pred"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["restored"]),
    ]
    return helper.make_model(helper.make_graph(nodes, "fill", inputs, outputs, initializer=c),
                             opset_imports=[helper.make_opsetid("", 17)])


def write(model: onnx.ModelProto, name: str, cfg: ModelConfig) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = OUT / f"{name}.onnx"
    onnx.save(model, path)
    cfg.name = name
    cfg.status = "test model, not a restorer"
    cfg.sha256 = sha256_of(path)
    path.with_name(path.name + ".json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")


def main() -> None:
    # small chunks so the tests exercise many chunk borders quickly
    for name, build in (("identity", identity), ("fill", fill)):
        cfg = ModelConfig(segment_frames=64, overlap_frames=8, context_frames=16, time_multiple=1)
        write(build(cfg), name, cfg)
    print(f"wrote test models to {OUT}")


if __name__ == "__main__":
    main()
