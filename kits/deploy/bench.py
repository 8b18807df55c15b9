"""Latency, throughput and peak memory of an exported model in one engine.

Each measurement can run in a fresh process (``measure_isolated``) so that thread pools, peak RSS
and one engine's state never leak into another's numbers.

    python -m kits.deploy.bench --model-dir DIR --backend onnxruntime --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MARK = "BENCHMARK_RESULT "


def measure(model_dir: str | Path, backend: str, threads: int = 1, batch: int = 1, iters: int = 50,
            warmup: int = 5, device: str = "cpu") -> dict:
    """Time ``run_raw`` on random inputs of the spec in this process."""
    from .predictor import Predictor, random_inputs

    start = time.perf_counter()
    predictor = Predictor(model_dir, backend, threads=threads, device=device)
    load_s = time.perf_counter() - start
    tensors = [np.repeat(t, batch, axis=0) for t in random_inputs(predictor.spec)]
    for _ in range(warmup):
        predictor.run_raw(tensors)
    times = []
    for _ in range(iters):
        tick = time.perf_counter()
        predictor.run_raw(tensors)
        times.append(time.perf_counter() - tick)
    ms = np.asarray(times) * 1000
    return {"backend": backend, "format": predictor.format, "threads": threads, "batch": batch,
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 4) for q in (50, 90, 99)},
            "throughput_per_s": round(batch * len(ms) / (ms.sum() / 1000), 2),
            "load_s": round(load_s, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def measure_isolated(model_dir: str | Path, backend: str, threads: int = 1, batch: int = 1, iters: int = 50,
                     warmup: int = 5, device: str = "cpu") -> dict:
    """``measure`` in a child process; a failure comes back as ``{"error": ...}``."""
    cmd = [sys.executable, "-m", "kits.deploy.bench", "--model-dir", str(model_dir), "--backend", backend,
           "--threads", str(threads), "--batch", str(batch), "--iters", str(iters), "--warmup", str(warmup),
           "--device", device]
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOG_minloglevel="2",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    error = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return {"backend": backend, "threads": threads, "error": error}


def compare_latency(model_dirs: dict[str, str | Path], backend: str, threads: int = 1, rounds: int = 3,
                    iters: int = 30, warmup: int = 5) -> dict:
    """p50 latency of several models in one engine, measured in alternating rounds.

    Alternating (A, B, A, B, ...) spreads machine noise over all models; the per-model figure is
    the median of its rounds' p50s.
    """
    runs: dict[str, list[dict]] = {name: [] for name in model_dirs}
    for _ in range(rounds):
        for name, directory in model_dirs.items():
            runs[name].append(measure_isolated(directory, backend, threads, iters=iters, warmup=warmup))
    result = {}
    for name, rows in runs.items():
        errors = [r["error"] for r in rows if "error" in r]
        if errors:
            result[name] = {"error": errors[0]}
            continue
        result[name] = {"p50_ms": round(float(np.median([r["p50_ms"] for r in rows])), 4),
                        "rounds_p50_ms": [r["p50_ms"] for r in rows],
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--backend", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    row = measure(args.model_dir, args.backend, args.threads, args.batch, args.iters, args.warmup, args.device)
    print(MARK + json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
