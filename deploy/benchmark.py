"""Latency, throughput and peak memory per backend and thread count of an exported model.

python deploy/benchmark.py --model-dir DIR [--backends onnxruntime openvino ...] [--threads 1 2]
    [--batch 1] [--iters 50] [--warmup 5]

Each (backend, threads) runs in its own process so that peak RSS and thread pools do not mix.
Prints a table, then one JSON object.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.deploy import DeployError, Predictor, load_spec, random_inputs  # noqa: E402
from kits.deploy.backends import BACKENDS, installed  # noqa: E402
from kits.deploy.predictor import pick_format  # noqa: E402

MARK = "BENCHMARK_RESULT "


def measure(args) -> dict:
    start = time.perf_counter()
    predictor = Predictor(args.model_dir, args.backend, threads=args.threads[0], device=args.device)
    load_s = time.perf_counter() - start
    tensors = [np.repeat(t, args.batch, axis=0) for t in random_inputs(predictor.spec)]
    for _ in range(args.warmup):
        predictor.run_raw(tensors)
    times = []
    for _ in range(args.iters):
        tick = time.perf_counter()
        predictor.run_raw(tensors)
        times.append(time.perf_counter() - tick)
    ms = np.asarray(times) * 1000
    return {"backend": args.backend, "format": predictor.format, "threads": args.threads[0], "batch": args.batch,
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 4) for q in (50, 90, 99)},
            "throughput_per_s": round(args.batch * len(ms) / (ms.sum() / 1000), 2),
            "load_s": round(load_s, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run_worker(args, backend: str, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--model-dir", args.model_dir, "--backends", backend,
           "--threads", str(threads), "--batch", str(args.batch), "--iters", str(args.iters),
           "--warmup", str(args.warmup), "--device", args.device]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOG_minloglevel="2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    error = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return {"backend": backend, "threads": threads, "error": error}


def table(rows: list[dict]) -> str:
    cols = ["backend", "format", "threads", "batch", "p50_ms", "p90_ms", "p99_ms", "throughput_per_s", "peak_rss_mb"]
    lines = ["  ".join(f"{c:>12}" for c in cols)]
    for r in rows:
        error = f"  {r['error']}" if "error" in r else ""
        lines.append("  ".join(f"{str(r.get(c, '-')):>12}" for c in cols) + error)
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--backends", nargs="+", default=None,
                    help=f"default: every installed one of {', '.join(BACKENDS)}")
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.backend = args.backends[0]
        print(MARK + json.dumps(measure(args)))
        return 0
    spec = load_spec(args.model_dir)
    backends = args.backends or [b for b in BACKENDS
                                 if installed(b) and any(f in spec.models for f in BACKENDS[b].formats)]
    for name in backends:
        pick_format(spec, name)  # a clear error before any process starts
    rows = [run_worker(args, b, t) for b in backends for t in args.threads]
    print(table(rows))
    print(json.dumps({"model_dir": str(args.model_dir), "task": spec.task, "device": args.device, "results": rows}))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
