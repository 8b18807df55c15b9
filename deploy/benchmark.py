"""Latency, throughput and peak memory per backend and thread count of an exported model.

python deploy/benchmark.py --model-dir DIR [--backends onnxruntime openvino ...] [--threads 1 2]
    [--batch 1] [--iters 50] [--warmup 5] [--shape image=1x3x360x480]

Inputs take the export's example shape unless --shape gives one: set it for a free-size export
(a segmentation model's example is a small tracing shape, e.g. 64x64) or a text model's length.

Each (backend, threads) runs in its own process so that peak RSS and thread pools do not mix.
Prints a table, then one JSON object.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.deploy import DeployError, load_spec  # noqa: E402
from kits.deploy.backends import BACKENDS, installed  # noqa: E402
from kits.deploy.bench import measure_isolated, parse_shapes  # noqa: E402
from kits.deploy.predictor import pick_format  # noqa: E402


def run_worker(args, backend: str, threads: int) -> dict:
    return measure_isolated(args.model_dir, backend, threads, args.batch, args.iters, args.warmup, args.device,
                            shapes=args.shapes)


def table(rows: list[dict]) -> str:
    cols = ["backend", "format", "threads", "batch", "shape", "p50_ms", "p90_ms", "p99_ms", "throughput_per_s", "peak_rss_mb"]
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
    ap.add_argument("--shape", action="append", default=[], metavar="NAME=BxCxHxW",
                    help="an input's shape instead of its example shape (batch included; overrides --batch)")
    args = ap.parse_args()
    args.shapes = parse_shapes(args.shape)
    spec = load_spec(args.model_dir)
    if args.shapes:
        spec.with_example_shapes(args.shapes)  # a clear error (unknown input, shape that does not fit) first
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
