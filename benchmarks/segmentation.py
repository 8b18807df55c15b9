"""Segmentation kit benchmark: PP-LiteSeg-STDC1 against the same network in PaddleSeg, plus ESPNet-CamVid.

Measured side by side in one run, so the ratios hold even on a noisy machine:

- accuracy: mIoU on CamVid val of the bundled ESPNet-CamVid model (or ``--config/--weights``)
  through ``kits.segmentation.evaluate``;
- training images/s of PP-LiteSeg on an STDC1 backbone (11 classes, three heads each with its
  loss, Momentum with a polynomial schedule) in the kit and in PaddleSeg, on the same real CamVid
  crops built once with the kit's dataset, in alternating rounds (kit, PaddleSeg, kit, ...);
- inference latency at batch 1, 360x480 (height x width), of both PP-LiteSeg-STDC1 models in every
  engine of the kit's export (Paddle Inference, ONNX Runtime, OpenVINO), each measurement in its
  own process with ``kits.deploy.bench.measure_isolated``; the ESPNet model is timed alongside.
  PaddleSeg's network is traced with ``paddle.jit.save`` and converted by the same export
  pipeline (paddle2onnx at opset 13, the same ONNX clean-up, OpenVINO from that ONNX), so both
  sides run the same engines with the same settings;
- FLOPs (paddle's MAC count) of each model at 360x480 against the machine's measured matmul peak,
  with the achieved GFLOP/s of the fastest kit engine.

Ratios: ``train_ratio`` = kit / PaddleSeg images/s (target >= 1.0); ``latency_ratio`` = kit p50 /
PaddleSeg p50 per engine (target <= 1.0).

The baseline is ``paddleseg==2.8.0`` installed without its dependencies (``--no-deps``) into
``output/baselines/paddleseg-2.8.0`` (git-ignored), never into the environment's site-packages;
it runs on the environment's paddlepaddle 3.3.1, opencv, scipy, scikit-learn and filelock. Should
paddleseg need a light module that is missing, only that one is added there, pinned:
prettytable==3.18.0 (with wcwidth==0.9.4) or filelock==4.2.11. PaddleSeg 2.8's own loss layers
multiply int64 masks with float32 tensors, which paddle 3 refuses; where they fail, both sides
train with plain softmax cross-entropy instead of OHEM and the JSON says so.

    python benchmarks/segmentation.py --install-baseline          # first run: fetches paddleseg
    python benchmarks/segmentation.py --threads 2 --steps 10 --rounds 3
    python benchmarks/segmentation.py --steps 2 --rounds 1 --iters 3 --eval-samples 4   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import kit_train_rate, train_rate  # noqa: E402

CONFIG = ROOT / "configs" / "segmentation" / "espnet_camvid.yml"
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"
BASELINE = "paddleseg==2.8.0"
BASELINE_DIR = ROOT / "output" / "baselines" / "paddleseg-2.8.0"
# Light modules paddleseg may import that the environment could lack: module -> pinned installs.
LIGHT_DEPS = {"prettytable": ["prettytable==3.18.0", "wcwidth==0.9.4"], "filelock": ["filelock==4.2.11"]}
ENGINES = ("paddle", "onnxruntime", "openvino")
FORMATS = ("paddle", "onnx", "openvino")  # the export formats behind ENGINES
HEIGHT, WIDTH = 360, 480          # latency and FLOPs input: CamVid's native size
NUM_CLASSES = 11
IGNORE = 255
MEAN, STD = [127.5] * 3, [127.5] * 3  # PaddleSeg's default Normalize (mean 0.5, std 0.5 of x / 255)
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 4.0e-5
WARMUP_STEPS, POWER, WARMUP_START = 100, 0.9, 0.1


# -- pure helpers -----------------------------------------------------------------------------

def parse_wh(text: str) -> tuple[int, int]:
    """``"480x360"`` (width x height, as image sizes are written) -> ``(height, width)``."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"a size is WIDTHxHEIGHT, e.g. 480x360; got {text!r}")
    return int(parts[1]), int(parts[0])


def ohem_min_kept(batch: int, height: int, width: int) -> int:
    """PaddleSeg's convention for OHEM's ``min_kept``: a sixteenth of the pixels of a batch."""
    return batch * height * width // 16


def ratio(num: float | None, den: float | None, digits: int = 3) -> float | None:
    return round(num / den, digits) if num and den else None


def efficiency(macs: int | None, p50_ms: float | None, peak_gflops: float | None) -> dict:
    """GFLOP per image (2 FLOPs a multiply-accumulate), achieved GFLOP/s at ``p50_ms`` and its share
    of ``peak_gflops``."""
    if not macs or not p50_ms:
        return {"gflop": round(2 * macs / 1e9, 3) if macs else None, "achieved_gflops": None,
                "share_of_peak": None}
    achieved = 2 * macs / 1e9 / (p50_ms / 1000)
    return {"gflop": round(2 * macs / 1e9, 3), "achieved_gflops": round(achieved, 2),
            "share_of_peak": round(achieved / peak_gflops, 4) if peak_gflops else None}


def first_lines(list_file: Path, count: int, out_dir: Path) -> Path:
    """A copy of a file list holding its first ``count`` entries (the val set, limited)."""
    lines = [line for line in Path(list_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    out = Path(out_dir) / f"{Path(list_file).stem}_first{count}.txt"
    out.write_text("\n".join(lines[:count]) + "\n", encoding="utf-8")
    return out


def rounds_summary(kit: list[float], base: list[float]) -> dict:
    """Medians of alternating rounds and their ratio (kit / baseline)."""
    k, b = statistics.median(kit), statistics.median(base)
    return {"kit_images_per_s": round(k, 3), "baseline_images_per_s": round(b, 3),
            "train_ratio": ratio(k, b), "train_ratio_per_round": [ratio(x, y) for x, y in zip(kit, base)],
            "target_train_ratio": 1.0}


def liteseg_config(data_root: Path, crop_hw: tuple[int, int], batch: int, loss: str) -> dict:
    """The kit's PP-LiteSeg-STDC1 for CamVid: PaddleSeg's pp_liteseg_stdc1 widths, three heads."""
    loss_cfg = ({"type": "OhemCrossEntropyLoss", "thresh": 0.7, "min_kept": ohem_min_kept(batch, *crop_hw),
                 "ignore_index": IGNORE} if loss == "ohem" else {"type": "CrossEntropyLoss", "ignore_index": IGNORE})
    norm = {"type": "Normalize", "channel_order": "RGB", "mean": MEAN, "std": STD}
    data = {"type": "FileListSegmentation", "root": str(data_root), "class_names": "labels.txt",
            "label_map": {11: IGNORE}, "ignore_index": IGNORE}
    return {
        "kit": "segmentation",
        "model": {"type": "PPLiteSeg", "num_classes": NUM_CLASSES, "backbone": {"type": "STDCNet", "variant": "STDC1"},
                  "arm_channels": [32, 64, 128], "head_channels": [32, 64, 64], "sppm_channels": 128,
                  "sppm_bins": [1, 2, 4], "aux_weights": [1.0, 1.0], "loss": loss_cfg},
        "optimizer": {"type": "Momentum", "lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY},
        "lr_scheduler": {"type": "Polynomial", "power": POWER, "warmup_steps": WARMUP_STEPS,
                         "warmup_start_factor": WARMUP_START},
        "train_dataset": {**data, "list": "train_list.txt", "transforms": [
            {"type": "RandomPaddingCrop", "crop_size": list(crop_hw), "im_padding_value": 127.5}, norm]},
        "val_dataset": {**data, "list": "val_list.txt", "transforms": [norm]},
        "export": {"input_size": [HEIGHT, WIDTH]},
        "trainer": {"batch_size": batch, "output_dir": "output/bench_segmentation"},
    }


def train_batches(task, cfg, steps: int, batch: int, seed: int = 0) -> list[dict]:
    """``steps`` batches of random CamVid training crops with their masks, built once (numpy)."""
    dataset = task.build_dataset(cfg, "train")
    np.random.seed(seed)  # the crop windows
    order = np.random.default_rng(seed).permutation(len(dataset))
    order = np.resize(order, steps * batch)  # wraps around when more crops than images are asked for
    collate = task.collate_for(dataset)
    out = []
    for k in range(0, len(order), batch):
        b = collate([dataset[int(i)] for i in order[k: k + batch]])
        out.append({"image": np.ascontiguousarray(b["image"], "float32"), "label": np.asarray(b["label"], "int64")})
    return out


# -- the PaddleSeg side -----------------------------------------------------------------------

def install_baseline(target: Path) -> None:
    """paddleseg into ``target`` without dependencies, then only the light modules it misses."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target", str(target)]
    subprocess.run(pip + [BASELINE], check=True, stdout=sys.stderr)
    for _ in range(len(LIGHT_DEPS) + 1):
        missing = missing_module(target)
        if missing is None:
            return
        if missing not in LIGHT_DEPS:
            raise RuntimeError(f"paddleseg needs '{missing}', which is not a light dependency this script installs")
        subprocess.run(pip + LIGHT_DEPS[missing], check=True, stdout=sys.stderr)


def missing_module(target: Path) -> str | None:
    """The module whose absence stops ``import paddleseg`` (from ``target``), else None."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kits\n"
            "try:\n    import paddleseg\nexcept ModuleNotFoundError as e:\n    print(e.name)")
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    name = out.stdout.strip().splitlines()[-1:] if out.stdout.strip() else []
    return name[0].split(".")[0] if name else None


def import_baseline(target: Path):
    """``paddleseg`` from ``target`` (first on sys.path); raises ImportError when absent."""
    if not (target / "paddleseg").is_dir():
        raise ImportError(f"paddleseg is not installed in {target}")
    sys.path.insert(0, str(target))
    import paddleseg

    if paddleseg.__version__ != BASELINE.split("==")[1]:
        raise ImportError(f"found paddleseg {paddleseg.__version__} in {target}, expected {BASELINE}")
    return paddleseg


def baseline_net():
    from paddleseg.models import PPLiteSeg
    from paddleseg.models.backbones import STDC1

    return PPLiteSeg(NUM_CLASSES, STDC1(), backbone_indices=[2, 3, 4], arm_out_chs=[32, 64, 128],
                     seg_head_inter_chs=[32, 64, 64], cm_out_ch=128, cm_bin_sizes=[1, 2, 4])


class PlainCrossEntropy:
    """Softmax cross-entropy averaged over non-ignored pixels (paddle's own op): the baseline loss
    when PaddleSeg's loss layers cannot run on this paddle."""

    def __call__(self, logits, label):
        import paddle.nn.functional as F

        return F.cross_entropy(logits, label.astype("int64"), ignore_index=IGNORE, axis=1)


def baseline_losses(min_kept: int, heads: int = 3) -> tuple[dict, str, str, list[str]]:
    """PaddleSeg's loss config for ``heads`` outputs (OHEM as its pp_liteseg configs use, else its
    CrossEntropyLoss, else plain cross-entropy): the config, its kind ('ohem'/'ce'), the loss's
    name and why the ones before it failed."""
    import paddle
    from paddleseg.models.losses import CrossEntropyLoss, OhemCrossEntropyLoss

    logits = paddle.randn([1, NUM_CLASSES, 8, 8])
    label = paddle.randint(0, NUM_CLASSES, [1, 8, 8]).astype("int64")
    failures = []
    for kind, make in (("ohem", lambda kept=min_kept: OhemCrossEntropyLoss(0.7, kept, IGNORE)),
                       ("ce", lambda kept=None: CrossEntropyLoss(ignore_index=IGNORE))):
        loss = make(16)  # fewer than the 64 probe pixels, so OHEM's mining branch runs too
        try:
            float(loss(logits, label))
        except Exception as exc:  # paddle 3's type promotion rejects int64 * float32 inside the layer
            failures.append(f"paddleseg {type(loss).__name__}: {_last_line(exc)}")
            continue
        return ({"types": [make() for _ in range(heads)], "coef": [1.0] * heads}, kind,
                f"paddleseg {type(loss).__name__}", failures)
    return ({"types": [PlainCrossEntropy() for _ in range(heads)], "coef": [1.0] * heads}, "ce",
            "paddle.nn.functional.cross_entropy (mean over non-ignored pixels)", failures)


def baseline_train_rate(batches: list[dict], losses: dict) -> float:
    """PaddleSeg's training step: model -> loss_computation over its logits -> Momentum update."""
    import paddle
    from paddleseg.core.train import loss_computation
    from paddleseg.optimizers import Momentum

    paddle.seed(0)
    net = baseline_net()
    net.train()
    sched = paddle.optimizer.lr.LinearWarmup(
        paddle.optimizer.lr.PolynomialDecay(LR, decay_steps=max(len(batches), 1), end_lr=0.0, power=POWER),
        warmup_steps=WARMUP_STEPS, start_lr=LR * WARMUP_START, end_lr=LR)
    opt = Momentum(momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)(net, sched)
    tensors = [{k: paddle.to_tensor(v) for k, v in b.items()} for b in batches]

    def step(batch):
        return {"loss": sum(loss_computation(net(batch["image"]), batch["label"], None, losses))}

    return train_rate(step, opt, sched, tensors, "label")


def baseline_graph(net, height: int, width: int):
    """PaddleSeg's network as the kit's exporter and ``model_flops`` take it (eval logits only)."""
    import paddle
    import paddle.nn as nn

    class Graph(nn.Layer):
        def __init__(self):
            super().__init__()
            self.net = net

        def export_forward(self, image):
            return self.net(image)[0]

        def input_spec(self):
            return [paddle.static.InputSpec([None, 3, height, width], "float32", "image")]

        def eval_outputs(self, outputs):
            return {"logits": outputs[0]}

    return Graph()


# -- the kit side -----------------------------------------------------------------------------

def export_shapes(model_dir: Path) -> dict | None:
    """Batch-1 360x480 example shapes for an export with free spatial dims, else None (fixed size)."""
    from kits.deploy import load_spec

    spec = load_spec(model_dir)
    free = {i.name: [1, 3, HEIGHT, WIDTH] for i in spec.inputs if any(d < 0 for d in i.shape[2:])}
    return free or None


def latency_row(model_dir: Path, backend: str, args) -> dict:
    from kits.deploy.bench import measure_isolated

    row = measure_isolated(model_dir, backend, args.threads, iters=args.iters, warmup=args.warmup,
                           shapes=export_shapes(model_dir))
    keep = ("p50_ms", "p90_ms", "peak_rss_mb", "error")
    return {k: v for k, v in row.items() if k in keep}


# -- sections ---------------------------------------------------------------------------------

def accuracy_section(args, tmp: Path) -> dict:
    from kits import segmentation as seg

    overrides = [f"val_dataset.root={args.data_root}"]
    if args.eval_samples:
        overrides.append(f"val_dataset.list={first_lines(args.data_root / 'val_list.txt', args.eval_samples, tmp)}")
    start = time.perf_counter()
    metrics = seg.evaluate(args.config, args.weights, overrides, report_dir=tmp / "eval_report")
    return {"config": _rel(args.config), "weights": args.weights or "config 'pretrained'",
            "val_samples": args.eval_samples or "all",
            **{k: round(metrics[k], 4) for k in ("mIoU", "Acc", "mAcc", "Kappa") if k in metrics},
            "seconds": round(time.perf_counter() - start, 1)}


def train_section(cfg, task, losses: dict | None, args) -> dict:
    batches = train_batches(task, cfg, args.steps, args.batch)
    warm = batches[: min(2, len(batches))]  # kernels, allocators and BN statistics paths on both sides
    out = {"batch_size": args.batch, "crop_hw": list(batches[0]["image"].shape[2:]), "steps_per_round": len(batches),
           "rounds": args.rounds, "optimizer": f"Momentum({MOMENTUM}) lr {LR} poly, weight_decay {WEIGHT_DECAY}"}
    kit_train_rate(cfg, task, warm, "label")
    if losses is not None:
        try:
            baseline_train_rate(warm, losses)
        except Exception as exc:
            out["baseline_error"], losses = _last_line(exc), None
    kit, base = [], []
    for _ in range(args.rounds):
        kit.append(kit_train_rate(cfg, task, batches, "label"))
        if losses is not None:
            base.append(baseline_train_rate(batches, losses))
    if base:
        return out | rounds_summary(kit, base)
    return out | {"kit_images_per_s": round(statistics.median(kit), 3), "baseline_images_per_s": None,
                  "train_ratio": None}


def latency_section(dirs: dict[str, Path | None], args) -> dict:
    """p50 per engine of each export, in alternating rounds (kit, baseline, ... per engine); the
    figure is the median of the rounds' p50s."""
    runs = {name: {e: [] for e in ENGINES} for name, d in dirs.items() if d is not None}
    for _ in range(args.rounds):
        for engine in ENGINES:
            for name in runs:
                runs[name][engine].append(latency_row(dirs[name], engine, args))
    out = {}
    for name, engines in runs.items():
        out[name] = {}
        for engine, rows in engines.items():
            errors = [r["error"] for r in rows if "error" in r]
            out[name][engine] = {"error": errors[0]} if errors else {
                "p50_ms": round(float(np.median([r["p50_ms"] for r in rows])), 3),
                "rounds_p50_ms": [r["p50_ms"] for r in rows], "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)}
    kit, base = out.get("kit_pp_liteseg_stdc1", {}), out.get("baseline_pp_liteseg_stdc1", {})
    out["latency_ratio"] = {e: ratio(kit.get(e, {}).get("p50_ms"), base.get(e, {}).get("p50_ms")) for e in ENGINES}
    out["target_latency_ratio"] = 1.0
    return out


def flops_section(models: dict[str, object], latency: dict, threads: int) -> dict:
    """MACs of each graph at 360x480, the machine's matmul peak, and the fastest engine's share of it."""
    from kits.deploy.bench import machine_peak_gflops
    from kits.slim.report import model_flops

    peak = machine_peak_gflops(threads)
    out = {"machine_peak_gflops": peak, "threads": threads, "input_hw": [HEIGHT, WIDTH],
           "note": "paddle counts multiply-accumulates (MACs), GFLOP = 2 x MACs; the peak is numpy's float32 "
                   "matmul measured now, not the theoretical one, so a tuned engine can exceed it"}
    for name, graph in models.items():
        macs = model_flops(graph) if graph is not None else None
        engines = {e: r["p50_ms"] for e, r in latency.get(name, {}).items() if isinstance(r, dict) and "p50_ms" in r}
        best = min(engines, key=engines.get) if engines else None
        out[name] = {"macs": macs, "params": int(sum(int(p.size) for p in graph.parameters())) if graph else None,
                     "best_engine": best, **efficiency(macs, engines.get(best), peak)}
    return out


def export_models(cfg, task, args, tmp: Path, baseline: dict | None) -> tuple[dict, dict]:
    """Export the kit's PP-LiteSeg-STDC1, the ``--config`` model and (when ``baseline`` holds its
    info) PaddleSeg's PP-LiteSeg-STDC1 to every format: their directories and their fixed-size graphs
    (for FLOPs). A baseline failure lands in ``baseline['export_error']``."""
    import paddle

    from kits import segmentation as seg
    from kits.export import export
    from kits.segmentation.task import FixedSizeExport

    other = Path(args.config).stem
    dirs = {"kit_pp_liteseg_stdc1": tmp / "kit_stdc1", "baseline_pp_liteseg_stdc1": None, other: tmp / other}
    seg.export(cfg, None, formats=FORMATS, output=dirs["kit_pp_liteseg_stdc1"])  # random weights: timing only
    seg.export(args.config, args.weights, formats=FORMATS, output=dirs[other])
    kit_model = seg.load_model(cfg)
    graphs = {"kit_pp_liteseg_stdc1": task.export_model(cfg, kit_model), "baseline_pp_liteseg_stdc1": None,
              other: FixedSizeExport(seg.load_model(args.config, args.weights), HEIGHT, WIDTH)}
    if baseline is None:
        return dirs, graphs
    try:
        paddle.seed(0)
        net = baseline_net()
        net.eval()
        graph = baseline_graph(net, HEIGHT, WIDTH)
        spec = {k: v for k, v in task.deploy_spec(cfg, kit_model).items() if k != "config_hash"}
        export(graph, spec, tmp / "baseline_stdc1", FORMATS)
        dirs["baseline_pp_liteseg_stdc1"], graphs["baseline_pp_liteseg_stdc1"] = tmp / "baseline_stdc1", graph
        baseline["export"] = ("paddle.jit.save of PaddleSeg's eval graph, then the kit's exporter "
                              "(paddle2onnx opset 13, the same ONNX clean-up, OpenVINO from that ONNX)")
    except Exception as exc:
        baseline["export_error"] = _last_line(exc)
    return dirs, graphs


# -- driver -----------------------------------------------------------------------------------

def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1].strip() if text else type(exc).__name__


def _rel(path) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _versions(paddleseg=None) -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for name in ("paddlepaddle", "paddle2onnx", "onnxruntime", "openvino"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    out["paddleseg"] = getattr(paddleseg, "__version__", None)
    return out


def load_baseline(args) -> tuple[object | None, dict]:
    info = {"package": BASELINE, "dir": _rel(args.baseline_dir),
            "install": f"pip install --no-deps --target {_rel(args.baseline_dir)} {BASELINE}"}
    try:
        if args.install_baseline:
            install_baseline(args.baseline_dir)
        return import_baseline(args.baseline_dir), info
    except Exception as exc:
        how = "installing it failed" if args.install_baseline else f"run with --install-baseline ({info['install']})"
        return None, info | {"error": f"{_last_line(exc)}; {how}"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(CONFIG), help="model whose mIoU is measured (default: ESPNet-CamVid)")
    ap.add_argument("--weights", default=None, help="weights for --config (default: its 'pretrained')")
    ap.add_argument("--eval-samples", type=int, default=None, help="first N val images (default: all 101)")
    ap.add_argument("--data-root", type=Path, default=CAMVID)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", default="480x360", help="training crop, WIDTHxHEIGHT (480x360 or 512x512)")
    ap.add_argument("--steps", type=int, default=10, help="training steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30, help="timed inference runs per measurement")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--install-baseline", action="store_true", help=f"pip install {BASELINE} (no deps) first")
    ap.add_argument("--baseline-dir", type=Path, default=BASELINE_DIR)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.data_root = args.data_root.resolve()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by paddle's thread pools at import
    import kits  # noqa: F401  (MKL's AVX2 path on AMD, before paddle computes anything)
    import paddle

    from kits import segmentation as seg
    from kits.core.config import Config

    paddleseg, baseline = load_baseline(args)
    crop = parse_wh(args.crop)
    result = {"benchmark": "segmentation", "flagship": "PP-LiteSeg-STDC1 (CamVid, 11 classes)",
              "threads": args.threads, "versions": _versions(paddleseg), "baseline": baseline, "notes": []}
    losses, loss_kind, base_loss = None, "ohem", None
    if paddleseg is not None:
        losses, loss_kind, base_loss, failures = baseline_losses(ohem_min_kept(args.batch, *crop))
        result["notes"] += failures
        if loss_kind != "ohem":
            result["notes"].append(f"OHEM is off on both sides: PaddleSeg's OhemCrossEntropyLoss fails on "
                                   f"paddle {paddle.__version__}")
    kit_loss = "OhemCrossEntropyLoss" if loss_kind == "ohem" else "CrossEntropyLoss"
    result["loss"] = {"heads": 3, "coef": [1.0, 1.0, 1.0], "kit": f"kit {kit_loss}", "baseline": base_loss}
    cfg = Config(liteseg_config(args.data_root, crop, args.batch, loss_kind), path="<benchmark>")
    task = seg.task_for(cfg)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        result["accuracy"] = accuracy_section(args, tmp)
        result["train"] = train_section(cfg, task, losses, args)

        dirs, graphs = export_models(cfg, task, args, tmp, result["baseline"] if paddleseg else None)
        result["latency"] = {"batch": 1, "input_hw": [HEIGHT, WIDTH], "iters": args.iters, "warmup": args.warmup,
                             **latency_section(dirs, args)}
        result["flops"] = flops_section(graphs, result["latency"], args.threads)
    print(json.dumps(result))
    return 0 if paddleseg is not None else 1


if __name__ == "__main__":
    sys.exit(main())
