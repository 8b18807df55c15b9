"""Compression benchmark: each recipe applied to one trained model, judged on the exported files.

For every recipe, the baseline (FP32 export) and the compressed export are evaluated with the
kit's metric in the target engine and timed in alternating rounds in the same run; the JSON gives
the accuracy drop and the latency ratios (baseline / compressed, > 1 means faster).

    python benchmarks/compression.py -c configs/detection/picodet_s_416_roadsign.yml \
        --weights output/picodet_s_416_roadsign/best_model.safetensors \
        --recipes configs/slim/ptq_int8_onnxruntime.yml configs/slim/ptq_int8_openvino.yml
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kits.core import cli  # noqa: E402
from kits.core.config import load_config  # noqa: E402


def summarize(report: dict) -> dict:
    keep = ("precision", "accuracy", "size_mb", "flops", "params", "latency_p50_ms")
    return {"metric": report["metric"], "target_engine": report["target_engine"],
            "baseline": {k: report["baseline"][k] for k in keep},
            "compressed": {k: report["compressed"][k] for k in keep},
            "accuracy_drop": report["accuracy_drop"], "speedup": report["speedup"],
            "deploy_gap": report["deploy_gap"], "shipped": report["shipped"], "notes": report["notes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--recipes", nargs="+", required=True)
    ap.add_argument("--slim-opt", nargs="+", default=[], help="recipe overrides applied to every recipe")
    ap.add_argument("--output", default="output/benchmarks/compression")
    args = ap.parse_args()
    cli.setup_logging(logging.WARNING)
    from kits.slim import CompressionError, load_recipe

    cfg = load_config(args.config)
    api = cli.kit_api(cfg)
    results = {}
    for path in args.recipes:
        recipe = load_recipe(path, args.slim_opt)
        out = Path(args.output) / Path(args.config).stem / recipe.name
        try:
            report = api.compress(load_config(args.config), recipe, weights=args.weights, output=out)
        except CompressionError as exc:
            report = json.loads((out / "report.json").read_text())
            report["notes"].append(f"collapse guard: {exc}")
        results[recipe.name] = summarize(report)
    print(json.dumps({"benchmark": "compression", "config": args.config, "weights": args.weights,
                      "cpu_threads": os.cpu_count(), "recipes": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
