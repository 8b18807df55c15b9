"""Our PicoDet-S-416 ONNX export vs the reference PaddleDetection ONNX, side by side.

Exports the kit's PicoDet-S-416 with the bundled COCO weights, then times what it ships for each
engine (its ONNX in ONNX Runtime, its IR in OpenVINO) and the reference `picodet_s_416_coco.onnx`
in ONNX Runtime and OpenVINO on the same machine, interleaving the two
models round by round so that machine noise hits both. Also checks that the outputs agree.
Prints one JSON object; `ratio` > 1 means our export is faster.

    python benchmarks/detection_export_speed.py [--runs 50] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

REFERENCE = ROOT.parent / "shared/weights/coco_det/picodet_s_416_coco.onnx"


def ort_runner(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    # idle ORT threads otherwise spin and steal the cores from the next engine measured
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def ov_runner(path: Path, threads: int):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    # compiled for batch 1, as kits.deploy's OpenVINO backend does for fixed-size models
    # (ours has a dynamic batch dim; the reference is exported at 1x3x416x416)
    model.reshape({model.inputs[0].get_any_name(): [1, 3, 416, 416]})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()

    def run(x):
        results = request.infer({0: x})
        return [results[o] for o in compiled.outputs]

    return run


def time_ms(run, x: np.ndarray, runs: int) -> float:
    run(x)
    start = time.perf_counter()
    for _ in range(runs):
        run(x)
    return (time.perf_counter() - start) * 1000 / runs


def export_ours(out: Path) -> dict[str, Path]:
    from kits.detection import PicoDet
    from kits.detection.task import DetectionTask
    from kits.export import export
    from kits.core.config import Config

    model = PicoDet(input_size=416, pretrained="picodet_s_416_coco")
    cfg = Config({"kit": "detection", "model": {"type": "PicoDet"}}, path="<benchmark>")
    spec = DetectionTask().deploy_spec(cfg, model)
    files = export(model, spec, out, ("onnx", "openvino"))
    return {"onnxruntime": Path(files["onnx"]), "openvino": Path(files["openvino"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not REFERENCE.is_file():
        sys.exit(f"needs the reference model {REFERENCE}")
    x = np.random.default_rng(0).standard_normal((1, 3, 416, 416)).astype(np.float32)
    result = {"benchmark": "detection_export_speed", "model": "PicoDet-S-416 COCO", "batch": 1,
              "threads": args.threads, "runs": args.runs, "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        ours_paths = export_ours(Path(tmp))  # each engine runs the format the kit ships for it
        for engine, make in (("onnxruntime", ort_runner), ("openvino", ov_runner)):
            ours, ref = make(ours_paths[engine], args.threads), make(REFERENCE, args.threads)
            diff = max(float(np.abs(a - b).max()) for a, b in zip(ours(x), ref(x)))
            t_ours, t_ref = [], []
            for _ in range(args.rounds):
                t_ref.append(time_ms(ref, x, args.runs))
                t_ours.append(time_ms(ours, x, args.runs))
            del ours, ref
            result[engine] = {"ours_ms": round(statistics.median(t_ours), 3),
                              "reference_ms": round(statistics.median(t_ref), 3),
                              "ratio": round(statistics.median(t_ref) / statistics.median(t_ours), 3),
                              "max_abs_diff_outputs": diff}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
