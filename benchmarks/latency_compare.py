"""Latency of several exported models in one engine, compared with the first in alternating rounds.

Each round measures every model once, each in a fresh process; a model's speedup is the median
over rounds of (first model's p50 / its p50) in the same round, which a host whose speed shifts
for tens of seconds at a time disturbs least. Prints JSON.

    python benchmarks/latency_compare.py output/.../baseline output/.../compressed \
        --backend openvino --threads 2 --rounds 15 --iters 30
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kits.deploy.bench import compare_latency, parse_shapes, same_round_speedup  # noqa: E402


def compare(model_dirs: list[str], backend: str, threads: int, rounds: int, iters: int,
            shapes: dict | None = None) -> dict:
    named = {str(d): d for d in model_dirs}
    if len(named) < 2:
        raise SystemExit("give at least two different model directories")
    latency = compare_latency(named, backend, threads, rounds, iters, shapes=shapes)
    reference = latency[str(model_dirs[0])]
    models = {}
    for name, row in latency.items():
        if "error" in row:
            models[name] = row
            continue
        speed = same_round_speedup(reference, row)
        models[name] = {"p50_ms": row["p50_ms"], "rounds_p50_ms": row["rounds_p50_ms"],
                        "peak_rss_mb": row["peak_rss_mb"], "speedup": speed["median"],
                        "speedup_per_round": speed["per_round"]}
    return {"benchmark": "latency_compare", "backend": backend, "threads": threads, "rounds": rounds,
            "iters": iters, "input_shapes": shapes, "cpu_count": os.cpu_count(), "reference": str(model_dirs[0]),
            "models": models}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dirs", nargs="+", help="exported model directories; the first is the reference")
    ap.add_argument("--backend", default="openvino")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--shape", action="append", default=[], metavar="NAME=BxCxHxW",
                    help="an input's shape instead of the export's example (e.g. image=1x3x360x480)")
    args = ap.parse_args()
    for d in args.model_dirs:
        if not (Path(d) / "deploy.yml").is_file():
            raise SystemExit(f"{d}: not an exported model directory (no deploy.yml)")
    print(json.dumps(compare(args.model_dirs, args.backend, args.threads, args.rounds, args.iters,
                             parse_shapes(args.shape)), indent=2))


if __name__ == "__main__":
    main()
