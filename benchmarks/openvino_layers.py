"""Where an exported model's time goes in OpenVINO: per layer type and kernel, for several exports.

Reads each directory's ``model.xml`` (what the kit ships for OpenVINO), runs it with OpenVINO's
per-layer counters on a random input of its example shape, and prints JSON: milliseconds per
(layer type, kernel) averaged over the runs, largest first, and the sum. Compare an FP32 export with
its INT8 version to see which layers INT8 speeds up on this CPU, e.g. after ``benchmarks/compression.py``:

    python benchmarks/openvino_layers.py output/benchmarks/compression/picodet_s_416_roadsign/RECIPE/baseline \
        output/benchmarks/compression/picodet_s_416_roadsign/RECIPE/compressed
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np


def layer_times(model_dir: Path, threads: int, runs: int, top: int) -> dict:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(model_dir / "model.xml"))
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True,
                                                 "PERFORMANCE_HINT": "LATENCY"})
    rng = np.random.default_rng(0)
    feed = [rng.standard_normal([1 if d.is_dynamic else d.get_length() for d in p.get_partial_shape()])
            .astype(np.float32) for p in model.inputs]
    request = compiled.create_infer_request()
    for _ in range(10):  # warm-up: first runs allocate and pick kernels
        request.infer(feed)
    totals: collections.Counter = collections.Counter()
    for _ in range(runs):
        request.infer(feed)
        for info in request.profiling_info:
            totals[f"{info.node_type} / {info.exec_type}"] += info.real_time.total_seconds() * 1000 / runs
    return {"sum_ms": round(sum(totals.values()), 3),
            "layers_ms": {k: round(v, 3) for k, v in totals.most_common(top)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dirs", nargs="+", type=Path, help="exported model directories (with model.xml)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--top", type=int, default=12, help="largest (layer type, kernel) entries to list")
    args = ap.parse_args()
    result = {"benchmark": "openvino_layers", "threads": args.threads, "runs": args.runs,
              "models": {str(d): layer_times(d, args.threads, args.runs, args.top) for d in args.model_dirs}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
