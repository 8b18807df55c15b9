"""What fake quantization costs before any QAT training: the validation metric of the float model and of
its fake-quantized graph after the input ranges are calibrated on training images, per input quantizer.

A cheap check before a long QAT run (which quantizer, which layers to keep float):

    python benchmarks/qat_calibration.py -c configs/detection/picodet_s_416_roadsign.yml \
        --weights output/picodet_s_416_roadsign/best_model.safetensors \
        --skip '*.se.*' 'head.cls_out.*' 'head.reg_out.*' 'backbone.stages.0.0.branch1.0.*'

Prints JSON: the float metric, then for each ``activation_quantize`` the metric without and (when
``--skip`` is given) with the skipped layers kept float.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def calibrated(model, task, cfg, samples: int, batch_size: int):
    """Run ``samples`` training images (validation transforms) with only the input quantizers in
    train mode, so they set their ranges and nothing else changes."""
    import paddle

    from kits.slim.deployed import calibration_batches

    model.eval()
    for name, layer in model.named_sublayers():
        if name.endswith("activation_quanter"):
            layer.train()
    with paddle.no_grad():
        for batch in calibration_batches(task, cfg, samples, batch_size=batch_size):
            model(batch)
    model.eval()
    return model


def run(config, weights, samples: int = 64, batch_size: int = 8, weight_bits: int = 7, skip=()) -> dict:
    """The float metric and, per input quantizer (and with ``skip`` kept float), the calibrated
    fake-quantized metric. ``config``: a path or a Config; ``weights``: a file or registered name."""
    from kits.core import cli, runner
    from kits.slim.base import SlimContext
    from kits.slim.deployed import score, val_loader
    from kits.slim.qat import QAT
    from kits.slim.quanters import ACTIVATION_QUANTIZE

    cfg = runner.as_config(config)
    task = cli.kit_api(cfg).task_for(cfg)
    metric = cfg.get_path("trainer.best_metric")
    dataset, loader = val_loader(task, cfg, batch_size)

    def evaluate(model) -> float:
        model.eval()
        result = score(model, task, cfg, dataset, loader)
        return round(float(result[metric] if metric else next(iter(result.values()))), 4)

    out = {"benchmark": "qat_calibration", "metric": metric, "calibration_samples": samples,
           "weight_bits": weight_bits, "float": evaluate(runner.load_model(cfg, task, weights)), "fake_quantized": {}}
    for quantize in ACTIVATION_QUANTIZE:
        for kept in ([[], list(skip)] if skip else [[]]):
            ctx = SlimContext(cfg=cfg, task=task, model=runner.load_model(cfg, task, weights), out_dir=None)
            QAT(weight_bits=weight_bits, activation_quantize=quantize, skip=kept).apply(ctx)
            key = f"{quantize}{' +skip' if kept else ''}"
            out["fake_quantized"][key] = evaluate(calibrated(ctx.model, task, cfg, samples, batch_size))
            print(f"{key}: {out['fake_quantized'][key]}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--samples", type=int, default=64, help="calibration images")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--weight-bits", type=int, default=7)
    ap.add_argument("--skip", nargs="*", default=[], help="layer-name globs kept float (QAT.skip)")
    args = ap.parse_args()
    from kits.core import cli

    cli.quiet_environment()  # before paddle is imported
    result = run(args.config, args.weights, args.samples, args.batch_size, args.weight_bits, args.skip)
    print(json.dumps({"config": args.config, **result}, indent=2))


if __name__ == "__main__":
    main()
