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
            warmup: int = 5, device: str = "cpu", shapes: dict[str, list[int]] | None = None) -> dict:
    """Time ``run_raw`` on random inputs of the spec in this process.

    ``shapes`` replaces inputs' example shapes (e.g. a sequence length), batch dimension included.
    """
    from .predictor import Predictor, random_inputs

    start = time.perf_counter()
    predictor = Predictor(model_dir, backend, threads=threads, device=device)
    load_s = time.perf_counter() - start
    spec = predictor.spec
    if shapes:
        spec = spec.with_example_shapes(shapes)
        batch = 1
    tensors = [np.repeat(t, batch, axis=0) for t in random_inputs(spec)]
    batch = len(tensors[0])
    for _ in range(warmup):
        predictor.run_raw(tensors)
    times = []
    for _ in range(iters):
        tick = time.perf_counter()
        predictor.run_raw(tensors)
        times.append(time.perf_counter() - tick)
    ms = np.asarray(times) * 1000
    return {"backend": backend, "format": predictor.format, "threads": threads, "batch": batch,
            "shape": ",".join("x".join(map(str, t.shape)) for t in tensors),
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 4) for q in (50, 90, 99)},
            "throughput_per_s": round(batch * len(ms) / (ms.sum() / 1000), 2),
            "load_s": round(load_s, 3),
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    Linux keeps ``ru_maxrss`` across exec, so a child started from a big parent would report the
    parent's size; ``VmHWM`` belongs to the current program image only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure_isolated(model_dir: str | Path, backend: str, threads: int = 1, batch: int = 1, iters: int = 50,
                     warmup: int = 5, device: str = "cpu", shapes: dict[str, list[int]] | None = None) -> dict:
    """``measure`` in a child process; a failure comes back as ``{"error": ...}``."""
    cmd = [sys.executable, "-m", "kits.deploy.bench", "--model-dir", str(model_dir), "--backend", backend,
           "--threads", str(threads), "--batch", str(batch), "--iters", str(iters), "--warmup", str(warmup),
           "--device", device]
    for name, shape in (shapes or {}).items():
        cmd += ["--shape", f"{name}={'x'.join(map(str, shape))}"]
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOG_minloglevel="2",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    error = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return {"backend": backend, "threads": threads, "error": error}


def machine_peak_gflops(threads: int = 1, size: int = 1536, repeats: int = 5) -> float:
    """Measured float32 matmul throughput of this machine with ``threads`` threads (best of
    ``repeats``), in GFLOP/s: the practical ceiling a model's latency is compared with.

    Runs numpy's BLAS in a child process so its thread count is set before the library loads.
    """
    code = ("import time, numpy as np\n"
            f"a = np.random.default_rng(0).standard_normal(({size}, {size})).astype('float32'); a @ a\n"
            "best = 1e9\n"
            f"for _ in range({repeats}):\n"
            "    t = time.perf_counter(); a @ a; best = min(best, time.perf_counter() - t)\n"
            f"print(2 * {size} ** 3 / best / 1e9)")
    env = dict(os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                        "MKL_NUM_THREADS")})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 1)


def compare_latency(model_dirs: dict[str, str | Path], backend: str, threads: int = 1, rounds: int = 3,
                    iters: int = 30, warmup: int = 5, shapes: dict[str, list[int]] | None = None) -> dict:
    """p50 latency of several models in one engine, measured in alternating rounds.

    Alternating (A, B, A, B, ...) spreads machine noise over all models; the per-model figure is
    the median of its rounds' p50s.
    """
    runs: dict[str, list[dict]] = {name: [] for name in model_dirs}
    for _ in range(rounds):
        for name, directory in model_dirs.items():
            runs[name].append(measure_isolated(directory, backend, threads, iters=iters, warmup=warmup,
                                               shapes=shapes))
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


def same_round_speedup(reference: dict, other: dict) -> dict:
    """``reference`` / ``other`` p50 per alternating round (entries of ``compare_latency``), and
    their median: the speedup of ``other``.

    The runs of one round are seconds apart, so they share the machine's state; on a shared host
    whose speed shifts for tens of seconds at a time, the ratio of runs of the same round is
    steadier than the ratio of each model's median over all rounds."""
    ratios = [round(a / b, 3) for a, b in zip(reference.get("rounds_p50_ms") or [], other.get("rounds_p50_ms") or [])
              if a and b]
    return {"median": round(float(np.median(ratios)), 3) if ratios else None, "per_round": ratios}


def parse_shapes(items: list[str]) -> dict[str, list[int]] | None:
    """``["image=1x3x360x480"]`` -> ``{"image": [1, 3, 360, 480]}`` (None for no items)."""
    shapes = {}
    for item in items:
        name, _, dims = item.partition("=")
        try:
            shapes[name] = [int(d) for d in dims.split("x")]
        except ValueError:
            raise SystemExit(f"--shape {item!r}: expected NAME=DIMxDIMx..., e.g. image=1x3x360x480") from None
    return shapes or None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--backend", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shape", action="append", default=[], metavar="NAME=BxT",
                    help="an input's shape instead of its example shape (batch included), e.g. input_ids=1x128")
    args = ap.parse_args(argv)
    row = measure(args.model_dir, args.backend, args.threads, args.batch, args.iters, args.warmup, args.device,
                  parse_shapes(args.shape))
    print(MARK + json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
