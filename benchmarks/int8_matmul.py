"""How much INT8 can speed up MiniLM's linear layers on this CPU, in ONNX Runtime.

Times one FP32 MatMul against its dynamic INT8 version (ONNX Runtime's quantizer with the
``ptq_dynamic_int8_onnxruntime`` settings: per-channel 7-bit weights, activations quantized at run
time) for each linear-layer shape of the MiniLM-L6 encoder at the given sequence length,
alternating rounds in one run. ``linear_layers_speedup`` weights the shapes by how often the
encoder runs them: it bounds the whole model's INT8 speedup, since everything else (attention
products, softmax, LayerNorm, GELU) stays float.

    python benchmarks/int8_matmul.py [--seq 128] [--threads 2] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def linear_shapes() -> dict[tuple[int, int], int]:
    """(in, out) -> how many such Linear layers the MiniLM-L6 encoder runs."""
    from kits.nlp.pretrained import ENCODER_PRESETS

    p = ENCODER_PRESETS["minilm_l6_en"]
    h, i, n = p["hidden_size"], p["intermediate_size"], p["num_layers"]
    return {(h, h): 4 * n, (h, i): n, (i, h): n}  # q, k, v, out; fc1; fc2


def matmul_model(k: int, n: int, path: Path, rng) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array((rng.standard_normal((k, n)) * 0.05).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_ms(run, runs: int) -> float:
    run()
    start = time.perf_counter()
    for _ in range(runs):
        run()
    return (time.perf_counter() - start) * 1000 / runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", type=int, default=128, help="tokens per call (batch 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    from onnxruntime import quantization as q

    rng = np.random.default_rng(0)
    shapes, rows = linear_shapes(), {}
    fp32_total = int8_total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for (k, n), count in shapes.items():
            fp32, int8 = Path(tmp) / f"{k}x{n}.onnx", Path(tmp) / f"{k}x{n}_int8.onnx"
            matmul_model(k, n, fp32, rng)
            q.quantize_dynamic(str(fp32), str(int8), weight_type=q.QuantType.QInt8, per_channel=True,
                               reduce_range=True)
            feeds = {"x": rng.standard_normal((args.seq, k)).astype(np.float32)}
            runners = [(lambda s=session(p, args.threads): s.run(None, feeds)) for p in (fp32, int8)]
            times: list[list[float]] = [[], []]
            for _ in range(args.rounds):
                for run, got in zip(runners, times):
                    got.append(time_ms(run, args.runs))
            f, i = statistics.median(times[0]), statistics.median(times[1])
            rows[f"{k}x{n}"] = {"layers": count, "fp32_ms": round(f, 4), "int8_ms": round(i, 4),
                                "speedup": round(f / i, 3)}
            fp32_total, int8_total = fp32_total + count * f, int8_total + count * i
    print(json.dumps({"benchmark": "int8_matmul", "engine": "onnxruntime", "seq_len": args.seq,
                      "threads": args.threads, "rounds": args.rounds, "shapes": rows,
                      "linear_layers_fp32_ms": round(fp32_total, 3), "linear_layers_int8_ms": round(int8_total, 3),
                      "linear_layers_speedup": round(fp32_total / int8_total, 3)}))


if __name__ == "__main__":
    main()
