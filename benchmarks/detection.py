"""Detection kit benchmark: PicoDet-S-416 on road signs against the same model in PaddleDetection.

Measured side by side in one run, so the ratios hold even on a noisy machine:

- accuracy of ``--weights`` (a ``configs/detection/picodet_s_416_roadsign.yml`` model) on the
  config's val set: COCO mAP@[.5:.95] and AP50 through ``kits.detection.evaluate``;
- training images/s: the same real road-sign batches (416x416, boxes padded per batch) through
  forward, loss, backward and an optimizer step, alternating kit / PaddleDetection rounds. The
  baseline is PicoDet-S as PaddleDetection's legacy ``picodet_s_416_coco.yml`` builds it (ESNet
  x0.75, CSP-PAN with 96 channels and 4 levels, PicoHead with a shared PicoFeat tower, VFL + GIoU
  + DFL and SimOTA), constructed from ``ppdet.modeling`` classes for the config's class count.
  Both get the optimizer, learning-rate schedule and gradient clipping of the config and the same
  BatchNorm mode (statistics frozen when the config's ``model.freeze_norm`` says so);
- inference latency at batch 1, 416x416, each engine in its own process through
  ``kits.deploy.bench``: the kit's export (Paddle Inference, ONNX Runtime, OpenVINO) and
  PaddleDetection's reference export ``picodet_s_416_coco.onnx`` (ONNX Runtime, and OpenVINO
  reading its IR converted as is); the reference has the 80-class COCO head, the kit model the
  config's classes (``flops.coco_head_macs_per_image`` counts that head);
- multiply-accumulates per image (as ``paddle.flops`` counts them), the machine's measured matmul
  peak and the share of it the fastest kit engine reaches.

Ratios: ``train_ratio`` = kit / PaddleDetection images/s (target >= 1.0); ``latency_ratio`` = kit
p50 / PaddleDetection p50 per engine (target <= 1.0).

The baseline is ``paddledet==2.6.0`` installed without its dependencies (its pins would replace
this environment's numpy and opencv) into ``output/baselines/paddledet``; importing its modeling
classes needs nothing beyond this environment (paddlepaddle 3.3.1, numpy 2.3, scipy, pycocotools,
scikit-learn, opencv-python-headless; it warns that lap, motmetrics and numba, used only by its
tracking code, are missing).

    python benchmarks/detection.py --install-baseline     # once
    python benchmarks/detection.py --weights output/picodet_s_416_roadsign/best_model.safetensors
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import train_rate  # noqa: E402
from benchmarks.detection_export_speed import REFERENCE  # noqa: E402

CONFIG = ROOT / "configs" / "detection" / "picodet_s_416_roadsign.yml"
BASELINE = "paddledet==2.6.0"
BASELINE_DIR = ROOT / "output" / "baselines" / "paddledet"
ENGINES = ("paddle", "onnxruntime", "openvino")
ENGINE_FORMATS = ("paddle", "onnx", "openvino")
SIZE = 416
# PaddleDetection configs/picodet/legacy_model/picodet_s_416_coco.yml (+ _base_/picodet_esnet.yml)
ESNET_S_RATIOS = [0.875, 0.5, 0.5, 0.5, 0.625, 0.5, 0.625, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


# -- the PaddleDetection side -----------------------------------------------------------------

def install_baseline(target: Path | None = None) -> None:
    target = target or BASELINE_DIR
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    BASELINE], check=True, stdout=sys.stderr)


def import_ppdet(target: Path | None = None):
    """``ppdet`` from ``target`` (first on sys.path); its import-time banners go to stderr."""
    target = target or BASELINE_DIR
    if not (target / "ppdet").is_dir():
        raise ImportError(f"PaddleDetection is not installed in {target}; run this script with "
                          f"--install-baseline (= pip install --no-deps --target {target} {BASELINE})")
    sys.path.insert(0, str(target))
    with contextlib.redirect_stdout(sys.stderr):
        import ppdet
        import ppdet.modeling  # noqa: F401
    return ppdet


def baseline_model(num_classes: int):
    """PaddleDetection's PicoDet-S-416 (legacy release) for ``num_classes`` classes, in train mode."""
    from ppdet.modeling.architectures.picodet import PicoDet
    from ppdet.modeling.assigners.simota_assigner import SimOTAAssigner
    from ppdet.modeling.backbones.esnet import ESNet
    from ppdet.modeling.heads.pico_head import PicoFeat, PicoHead
    from ppdet.modeling.losses.gfocal_loss import DistributionFocalLoss
    from ppdet.modeling.losses.iou_loss import GIoULoss
    from ppdet.modeling.losses.varifocal_loss import VarifocalLoss
    from ppdet.modeling.necks.csp_pan import CSPPAN

    backbone = ESNet(scale=0.75, feature_maps=[4, 11, 14], act="hard_swish", channel_ratio=ESNET_S_RATIOS)
    neck = CSPPAN(in_channels=[s.channels for s in backbone.out_shape], out_channels=96, use_depthwise=True,
                  num_csp_blocks=1, num_features=4)
    feat = PicoFeat(feat_in=96, feat_out=96, num_convs=2, num_fpn_stride=4, norm_type="bn", share_cls_reg=True)
    head = PicoHead(conv_feat=feat, num_classes=num_classes, fpn_stride=[8, 16, 32, 64], prior_prob=0.01,
                    reg_max=7, feat_in_chan=96, cell_offset=0.5,
                    loss_class=VarifocalLoss(use_sigmoid=True, iou_weighted=True, loss_weight=1.0),
                    loss_dfl=DistributionFocalLoss(loss_weight=0.25), loss_bbox=GIoULoss(loss_weight=2.0),
                    assigner=SimOTAAssigner(candidate_topk=10, iou_weight=6, num_classes=num_classes))
    model = PicoDet(backbone, neck, head)
    model.train()
    return model


def to_ppdet_batch(batch: dict) -> dict:
    """The kit's padded batch as PaddleDetection's PicoDet reads it: per-image lists of the real
    boxes ([M, 4] xyxy) and classes ([M, 1] int32), plus ``im_id``, ``im_shape``, ``scale_factor``."""
    n, _, h, w = batch["image"].shape
    keep = [batch["pad_gt_mask"][i] > 0 for i in range(n)]
    return {"image": batch["image"],
            "gt_bbox": [batch["gt_bbox"][i][k].astype(np.float32) for i, k in enumerate(keep)],
            "gt_class": [batch["gt_class"][i][k].astype(np.int32).reshape(-1, 1) for i, k in enumerate(keep)],
            "im_id": np.arange(n, dtype=np.int64).reshape(n, 1),
            "im_shape": np.tile(np.array([[h, w]], np.float32), (n, 1)),
            "scale_factor": np.asarray(batch["scale_factor"], np.float32).reshape(n, 2)}


def reference_model_dir(out: Path, reference: Path = REFERENCE) -> Path:
    """PaddleDetection's ONNX export as a ``kits.deploy`` model directory, so that it is timed by the
    same harness and engine options as the kit's: the ONNX file as is, and the OpenVINO IR that
    OpenVINO's own ONNX reader makes of it (fp32, no graph passes)."""
    import onnx
    import openvino as ov
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(reference, out / "model.onnx")
    graph = onnx.load(str(reference))
    init = {t.name for t in graph.graph.initializer}
    (image,) = [i for i in graph.graph.input if i.name not in init]
    shape = [d.dim_value for d in image.type.tensor_type.shape.dim]
    ov.save_model(ov.Core().read_model(str(reference)), str(out / "model.xml"), compress_to_fp16=False)
    spec = {"format_version": 1, "task": "detection",
            "inputs": [{"name": image.name, "dtype": "float32", "shape": shape}],
            "outputs": [o.name for o in graph.graph.output],
            "models": {"onnx": {"engine": "onnxruntime", "files": ["model.onnx"]},
                       "openvino": {"engine": "openvino", "files": ["model.xml", "model.bin"]}},
            "notes": [f"PaddleDetection reference export {reference.name}"]}
    (out / "deploy.yml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return out


# -- batches and training ---------------------------------------------------------------------

def fixed_size_section(section: dict, size: int = SIZE) -> dict:
    """A train_dataset section whose batches all have ``size`` x ``size`` images (the config's
    per-sample augmentation kept, its multi-scale resize pinned to one size)."""
    rest = [t for t in section.get("batch_transforms") or [] if t.get("type") != "BatchRandomResize"]
    if not any(t.get("type") == "Normalize" for t in rest):
        rest.append({"type": "Normalize"})
    pinned = {"type": "BatchRandomResize", "sizes": [size], "random_interp": False}
    return {**section, "batch_transforms": [pinned, *rest]}


def train_batches(cfg, task, count: int, batch_size: int, size: int = SIZE, seed: int = 0) -> list[dict]:
    """``count`` batches of random training images with their boxes, built once by the kit's dataset
    and collate; numpy arrays."""
    dataset = task.datasets.build(fixed_size_section(dict(cfg["train_dataset"]), size))
    np.random.seed(seed)  # the dataset's augmentations draw from numpy's global generator
    order = np.random.default_rng(seed).permutation(max(len(dataset), count * batch_size)) % len(dataset)
    collate = task.collate_for(dataset)
    return [dict(collate([dataset[int(i)] for i in order[k * batch_size: (k + 1) * batch_size]]))
            for k in range(count)]


def to_paddle(value):
    import paddle

    if isinstance(value, list):
        return [paddle.to_tensor(v) for v in value]
    return paddle.to_tensor(value)


def freeze_batch_norm(model) -> int:
    """Normalise with running statistics in train mode (the kit's ``freeze_norm``), for any model."""
    import paddle.nn as nn

    norms = [m for m in model.sublayers() if isinstance(m, (nn.BatchNorm, nn.layer.norm._BatchNormBase))]
    for m in norms:
        m._use_global_stats = True
    return len(norms)


def norm_frozen(model) -> bool:
    return any(getattr(m, "_use_global_stats", None) for m in model.sublayers())


def optimizer_for(cfg, model, steps: int):
    from kits.core.optim import build_optimizer, build_scheduler

    sched = build_scheduler(dict(cfg.get("lr_scheduler") or {}), cfg["optimizer"]["lr"], steps, steps)
    clip = (cfg.get("trainer") or {}).get("clip_grad_norm")
    return build_optimizer(dict(cfg["optimizer"]), model, sched, clip), sched


def param_count(model) -> int:
    return sum(int(p.size) for p in model.parameters())


# -- sections ---------------------------------------------------------------------------------

def eval_overrides(cfg, limit: int | None, tmp: Path) -> list[str]:
    """Overrides that keep the first ``limit`` images of a VOC val list (the detection datasets have
    no ``max_samples``): a shortened copy of the list file, given by absolute path."""
    section = cfg["val_dataset"]
    if not limit or not section.get("list"):
        return []
    lines = [ln for ln in (Path(section["root"]) / section["list"]).read_text().splitlines() if ln.strip()]
    short = tmp / f"val_first_{limit}.txt"
    short.write_text("\n".join(lines[:limit]) + "\n")
    return [f"val_dataset.list={short.resolve()}"]


def accuracy_section(cfg, weights: str, args, tmp: Path) -> dict:
    from kits import detection as det

    overrides = [*args.override, *eval_overrides(cfg, args.eval_samples, tmp)]
    metrics = det.evaluate(CONFIG, weights, overrides, report_dir=tmp / "eval")
    return {"weights": weights, "val_images": args.eval_samples or "all", "mAP": round(metrics["mAP"], 4),
            "AP50": round(metrics["AP50"], 4), "AP75": round(metrics["AP75"], 4)}


def baseline_trainer(cfg, kit, batches: list[dict], steps: int):
    """PaddleDetection's model (BatchNorm mode as the kit's), optimizer and the converted batches."""
    ref = baseline_model(kit.num_classes)
    if norm_frozen(kit):
        freeze_batch_norm(ref)
    tensors = [{k: to_paddle(v) for k, v in to_ppdet_batch(b).items()} for b in batches]
    return ref, optimizer_for(cfg, ref, steps), tensors


def train_section(cfg, task, args, baseline_error: str | None = None) -> dict:
    batches = train_batches(cfg, task, args.steps, args.batch)
    total = args.steps * (args.rounds + 1)
    kit = task.build_model(cfg)
    kit.train()
    kit_opt, kit_tensors = optimizer_for(cfg, kit, total), [{k: to_paddle(v) for k, v in b.items()} for b in batches]
    warm = min(2, len(batches))  # first calls pay for kernel selection and allocator growth
    ref = None
    if not baseline_error:
        try:
            ref, ref_opt, ref_tensors = baseline_trainer(cfg, kit, batches, total)
            train_rate(ref, *ref_opt, ref_tensors[:warm], "image")
        except Exception as exc:  # an old ppdet failing on a new paddle: report it, keep the kit's figures
            ref, baseline_error = None, f"PaddleDetection training failed: {type(exc).__name__}: {exc}"
    train_rate(kit, *kit_opt, kit_tensors[:warm], "image")
    kit_rates, ref_rates = [], []
    for _ in range(args.rounds):
        kit_rates.append(train_rate(kit, *kit_opt, kit_tensors, "image"))
        if ref is not None:
            ref_rates.append(train_rate(ref, *ref_opt, ref_tensors, "image"))
    result = {"batch_size": args.batch, "input_size": SIZE, "steps_per_round": args.steps, "rounds": args.rounds,
              "optimizer": dict(cfg["optimizer"]), "clip_grad_norm": (cfg.get("trainer") or {}).get("clip_grad_norm"),
              "norm_statistics": "frozen" if norm_frozen(kit) else "batch",
              "mean_boxes_per_image": round(float(np.mean([b["pad_gt_mask"].sum(1).mean() for b in batches])), 2),
              "kit_params": param_count(kit), "kit_images_per_s": round(statistics.median(kit_rates), 2)}
    if ref is None:
        return {**result, "baseline_error": baseline_error}
    k, r = statistics.median(kit_rates), statistics.median(ref_rates)
    return {**result, "baseline_params": param_count(ref), "baseline_images_per_s": round(r, 2),
            "train_ratio": round(k / r, 3),
            "train_ratio_per_round": [round(a / b, 3) for a, b in zip(kit_rates, ref_rates)], "target_train_ratio": 1.0}


def latency_section(kit_dir: Path, ref_dir: Path | None, ref_error: str | None, args) -> list[dict]:
    """Per engine, kit and reference measured in alternating isolated processes, ``rounds`` times
    (the median of the rounds' p50s)."""
    from kits.deploy.bench import compare_latency

    rows = []
    for engine in ENGINES:
        # the reference export exists only as ONNX: no Paddle Inference row for it
        dirs = {"kit": kit_dir, **({"baseline": ref_dir} if ref_dir and engine != "paddle" else {})}
        row = {"engine": engine, **compare_latency(dirs, engine, args.threads, args.rounds, args.iters, args.warmup)}
        if engine != "paddle" and not ref_dir:
            row["baseline"] = {"error": ref_error}
        if "p50_ms" in row["kit"] and "p50_ms" in row.get("baseline", {}):
            row["latency_ratio"] = round(row["kit"]["p50_ms"] / row["baseline"]["p50_ms"], 3)
        rows.append(row)
    return rows


def efficiency(macs: int, p50_ms: float, peak_gflops: float) -> dict:
    """Achieved GFLOP/s (2 FLOPs per multiply-accumulate) at ``p50_ms`` and its share of the peak."""
    achieved = 2 * macs / (p50_ms / 1000) / 1e9
    return {"achieved_gflops": round(achieved, 2), "share_of_peak": round(achieved / peak_gflops, 4)}


def flops_section(cfg, task, args, latency: list[dict]) -> dict:
    from kits.core.config import load_config
    from kits.deploy.bench import machine_peak_gflops
    from kits.slim.report import model_flops

    macs = model_flops(task.build_model(cfg))
    coco = model_flops(task.build_model(load_config(CONFIG, [*args.override, "model.head.num_classes=80"])))
    peak = machine_peak_gflops(args.threads)
    result = {"macs_per_image": macs, "gflops_per_image": round(2 * macs / 1e9, 3) if macs else None,
              "coco_head_macs_per_image": coco, "machine_peak_gflops": peak, "threads": args.threads}
    timed = [(r["kit"]["p50_ms"], r["engine"]) for r in latency if "p50_ms" in r["kit"]]
    if macs and timed:
        p50, engine = min(timed)
        result.update({"best_kit_engine": engine, "best_kit_p50_ms": p50, **efficiency(macs, p50, peak)})
    return result


# -- driver -----------------------------------------------------------------------------------

def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("paddlepaddle", "paddle2onnx", "onnxruntime", "openvino"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def baseline_status(args) -> dict:
    """What is known of the PaddleDetection install; ``error`` says why there is no training baseline."""
    info = {"package": BASELINE, "path": str(BASELINE_DIR.relative_to(ROOT)),
            "model": "PicoDet-S-416, legacy release (ppdet.modeling classes)", "reference_onnx": str(REFERENCE)}
    try:
        if args.install_baseline and not (BASELINE_DIR / "ppdet").is_dir():
            install_baseline()
        return {**info, "version": import_ppdet().__version__}
    except Exception as exc:
        return {**info, "error": f"{type(exc).__name__}: {exc}"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="trained picodet_s_416_roadsign weights; without them accuracy is skipped")
    ap.add_argument("--eval-samples", type=int, default=None, help="first N val images (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="training batch size")
    ap.add_argument("--steps", type=int, default=10, help="training steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating kit / baseline rounds (train and latency)")
    ap.add_argument("--iters", type=int, default=50, help="timed inference runs per latency measurement")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--install-baseline", action="store_true", help=f"pip install --no-deps {BASELINE} first")
    ap.add_argument("-o", "--override", action="append", default=[], help="config override, e.g. trainer.device=cpu")
    args = ap.parse_args(argv)
    weights = str(Path(args.weights).resolve()) if args.weights else None
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by paddle's thread pools at import
    os.chdir(ROOT)  # dataset roots in the configs are relative to the repository
    import kits  # noqa: F401  (sets the MKL CPU type before paddle loads)
    from kits import detection as det
    from kits.core.config import load_config

    baseline = baseline_status(args)
    cfg = load_config(CONFIG, args.override)
    task = det.task_for(cfg)
    result = {"benchmark": "detection", "config": str(CONFIG.relative_to(ROOT)),
              "model": "PicoDet-S-416 (ESNet x0.75, CSP-PAN, PicoHead GFL)", "threads": args.threads,
              "versions": {**versions(), "ppdet": baseline.get("version")}, "baseline": baseline}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result["accuracy"] = accuracy_section(cfg, weights, args, tmp) if weights else {"skipped": "no --weights"}
        result["train"] = train_section(cfg, task, args, baseline.get("error"))
        if "baseline_error" in result["train"]:
            baseline.setdefault("error", result["train"]["baseline_error"])
        det.export(CONFIG, weights, formats=ENGINE_FORMATS, output=tmp / "kit", overrides=args.override)
        ref_dir, ref_error = None, None
        try:
            ref_dir = reference_model_dir(tmp / "reference")
        except Exception as exc:
            ref_error = f"reference export unusable: {type(exc).__name__}: {exc}"
        result["latency"] = latency_section(tmp / "kit", ref_dir, ref_error, args)
        result["target_latency_ratio"] = 1.0
    result["flops"] = flops_section(cfg, task, args, result["latency"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
