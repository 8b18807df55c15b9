"""NLP kit benchmark: MiniLM-L6 on SST-2 against the same model in HF transformers (torch, CPU).

Measured side by side in one run, so the ratios hold even on a noisy machine:

- accuracy on SST-2 dev of ``--weights`` (a fine-tuned ``configs/nlp/minilm_l6_sst2.yml`` model), in
  the kit and, with the same weights copied into ``transformers.BertModel``, in transformers;
- training samples/s: the same real SST-2 batches (32 phrases, padded to the longest) through
  forward, loss, backward and an AdamW step, alternating kit / transformers rounds;
- inference latency at batch 1 and 32, sequence length 128, for each installed engine of the kit's
  export (Paddle Inference, ONNX Runtime, OpenVINO) and for transformers (torch eager, no grad),
  each measured in its own process;
- the best engine's batch-1 latency as achieved GFLOP/s next to this machine's measured matmul peak.

Ratios: ``train_ratio`` = kit / transformers samples/s (target >= 1.0); ``latency_ratio`` = kit
engine p50 / transformers p50 (target <= 1.0).

    make bench-nlp          # installs the [bench-nlp] extra (torch CPU + transformers), then runs this
    python benchmarks/nlp.py --weights output/minilm_l6_sst2/best_model.safetensors
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

from benchmarks.common import kit_train_rate  # noqa: E402

CONFIG = ROOT / "configs" / "nlp" / "minilm_l6_sst2.yml"
MARK = "BENCHMARK_RESULT "
ENGINES = ("paddle", "onnxruntime", "openvino")


# -- the transformers side --------------------------------------------------------------------

def hf_model(state: dict[str, np.ndarray] | None, num_classes: int = 2):
    """transformers' BertModel with the MiniLM-L6 shape, mean pooling and a linear head, holding the
    kit's weights (``state``: kit key layout) or MiniLM's own when ``state`` is None."""
    import torch
    from transformers import BertConfig, BertModel

    from kits.nlp.pretrained import ENCODER_PRESETS, minilm_dir

    p = ENCODER_PRESETS["minilm_l6_en"]
    config = BertConfig(vocab_size=p["vocab_size"], hidden_size=p["hidden_size"], num_hidden_layers=p["num_layers"],
                        num_attention_heads=p["num_heads"], intermediate_size=p["intermediate_size"],
                        max_position_embeddings=p["max_position"], type_vocab_size=p["type_vocab_size"],
                        layer_norm_eps=p["layer_norm_eps"], hidden_act="gelu")

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel(config, add_pooling_layer=False)
            self.dropout = torch.nn.Dropout(0.1)
            self.fc = torch.nn.Linear(config.hidden_size, num_classes)

        def forward(self, input_ids, token_type_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, token_type_ids=token_type_ids,
                               attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return self.fc(self.dropout((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)))

    model = Classifier()
    if state is None:
        from safetensors.numpy import load_file

        weights = {f"bert.{k}": v for k, v in load_file(str(minilm_dir() / "model.safetensors")).items()
                   if not k.startswith("pooler") and not k.endswith("position_ids")}
    else:
        weights = to_hf_state(state)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                                                 for k, v in weights.items()}, strict=False)
    missing = [k for k in missing if not k.startswith("fc.") or state is not None]
    if missing or unexpected:
        raise RuntimeError(f"weights do not fit transformers' BertModel: missing {missing}, unexpected {unexpected}")
    return model


def to_hf_state(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The kit's SequenceClassifier weights under transformers' names (Linear weights back to [out, in])."""
    from kits.nlp.pretrained import _LAYER_KEYS, _TOP_KEYS

    layer = {v: k for k, v in _LAYER_KEYS.items()}
    top = {v: k for k, v in _TOP_KEYS.items()}
    out = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        if module == "head.fc":
            out[f"fc.{leaf}"] = value.T if leaf == "weight" else value
            continue
        module = module.removeprefix("encoder.")
        if module.startswith("layers."):
            index, _, rest = module[len("layers."):].partition(".")
            name = f"bert.encoder.layer.{index}.{layer[rest]}"
        elif module in top:
            if module == "pooler":
                continue
            name = f"bert.{top[module]}"
        else:
            raise KeyError(f"no transformers name for '{key}'")
        is_linear = leaf == "weight" and value.ndim == 2 and "embeddings" not in name
        out[f"{name}.{leaf}"] = value.T if is_linear else value
    return out


def hf_train_rate(batches: list[dict], threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = hf_model(None)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    tensors = [{k: torch.from_numpy(v) for k, v in b.items()} for b in batches]
    start = time.perf_counter()
    for b in tensors:
        logits = model(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        loss = torch.nn.functional.cross_entropy(logits, b["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad()
    return sum(len(b["labels"]) for b in batches) / (time.perf_counter() - start)


def hf_latency(batch: int, seq: int, threads: int, iters: int, warmup: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    model = hf_model(None).eval()
    ids, types, mask = (torch.from_numpy(a) for a in inference_inputs(batch, seq))
    with torch.inference_mode():
        for _ in range(warmup):
            model(ids, types, mask)
        times = []
        for _ in range(iters):
            tick = time.perf_counter()
            model(ids, types, mask)
            times.append(time.perf_counter() - tick)
    return {"backend": "transformers-torch", "batch": batch, "p50_ms": round(float(np.median(times)) * 1000, 3)}


def hf_accuracy(state: dict[str, np.ndarray], batches: list[dict], threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    model = hf_model(state).eval()
    right = total = 0
    with torch.inference_mode():
        for b in batches:
            logits = model(*(torch.from_numpy(b[k]) for k in ("input_ids", "token_type_ids", "attention_mask")))
            right += int((logits.argmax(-1).numpy() == b["labels"]).sum())
            total += len(b["labels"])
    return right / total


# -- the kit side -----------------------------------------------------------------------------

def kit_latency(model_dir: Path, backend: str, batch: int, seq: int, threads: int, iters: int, warmup: int) -> dict:
    from kits.deploy.bench import measure_isolated

    shapes = {name: [batch, seq] for name in ("input_ids", "token_type_ids", "attention_mask")}
    row = measure_isolated(model_dir, backend, threads, iters=iters, warmup=warmup, shapes=shapes)
    keep = ("backend", "batch", "p50_ms", "p90_ms", "peak_rss_mb", "error")
    return {k: v for k, v in row.items() if k in keep} | {"batch": batch}


def inference_inputs(batch: int, seq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-length rows of random in-vocabulary ids: every position is real work in both models."""
    ids = np.random.default_rng(0).integers(1000, 30000, size=(batch, seq)).astype("int64")
    return ids, np.zeros_like(ids), np.ones_like(ids)


def train_batches(cfg, task, count: int, batch_size: int, seed: int = 0) -> list[dict]:
    """``count`` batches of random SST-2 training phrases, padded to the longest in each batch."""
    dataset = task.build_dataset(cfg, "train")
    order = np.random.default_rng(seed).permutation(len(dataset))[: count * batch_size]
    collate = task.collate_for(dataset)
    return [dict(collate([dataset[int(i)] for i in order[k: k + batch_size]]))
            for k in range(0, len(order), batch_size)]


def dev_batches(cfg, task, limit: int | None, batch_size: int = 128) -> list[dict]:
    dataset = task.build_dataset(cfg, "val")
    n = min(len(dataset), limit or len(dataset))
    collate = task.collate_for(dataset)
    return [dict(collate([dataset[i] for i in range(k, min(k + batch_size, n))])) for k in range(0, n, batch_size)]


def _numpy(batch: dict) -> dict:
    return {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in batch.items()}


# -- driver -----------------------------------------------------------------------------------

def child(args) -> int:
    """One transformers latency measurement in this (fresh) process."""
    print(MARK + json.dumps(hf_latency(args.batch, args.seq, args.threads, args.iters, args.warmup)))
    return 0


def hf_latency_isolated(batch: int, seq: int, threads: int, iters: int, warmup: int) -> dict:
    cmd = [sys.executable, __file__, "--child-hf-latency", "--batch", str(batch), "--seq", str(seq),
           "--threads", str(threads), "--iters", str(iters), "--warmup", str(warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    return {"backend": "transformers-torch", "batch": batch,
            "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}


def latency_section(model_dir: Path, args) -> list[dict]:
    rows = []
    for batch in (1, 32):
        iters = args.iters if batch == 1 else max(3, args.iters // 8)
        ref = hf_latency_isolated(batch, args.seq, args.threads, iters, args.warmup)
        rows.append(ref)
        for engine in ENGINES:
            row = kit_latency(model_dir, engine, batch, args.seq, args.threads, iters, args.warmup)
            if "p50_ms" in row and "p50_ms" in ref:
                row["latency_ratio"] = round(row["p50_ms"] / ref["p50_ms"], 3)
            rows.append(row)
    return rows


def encoder_macs(seq: int) -> int:
    """Multiply-accumulates of one sequence through MiniLM-L6 (projections, FFN, attention)."""
    from kits.nlp.pretrained import ENCODER_PRESETS

    p = ENCODER_PRESETS["minilm_l6_en"]
    h, i = p["hidden_size"], p["intermediate_size"]
    return p["num_layers"] * (4 * seq * h * h + 2 * seq * h * i + 2 * seq * seq * h)


def efficiency_section(rows: list[dict], seq: int, threads: int) -> dict:
    """The best engine's batch-1 latency against the model's FLOPs and this machine's measured peak."""
    from kits.deploy.bench import machine_peak_gflops

    ours = [r for r in rows if r["batch"] == 1 and "p50_ms" in r and r["backend"] != "transformers-torch"]
    if not ours:
        return {"error": "no kit engine ran"}
    best = min(ours, key=lambda r: r["p50_ms"])
    gflop = 2 * encoder_macs(seq) / 1e9
    peak = machine_peak_gflops(threads)
    achieved = gflop / (best["p50_ms"] / 1000)
    return {"gflop_per_sequence": round(gflop, 3), "best_engine": best["backend"], "best_p50_ms": best["p50_ms"],
            "achieved_gflops": round(achieved, 1), "machine_peak_gflops": peak,
            "share_of_peak": round(achieved / peak, 3)}


def train_section(cfg, task, args) -> dict:
    batches = [_numpy(b) for b in train_batches(cfg, task, args.train_steps, 32)]
    kit_train_rate(cfg, task, batches[:3], "labels")  # warm up kernels and allocators on both sides
    hf_train_rate(batches[:3], args.threads)
    kit, ref = [], []
    for _ in range(args.rounds):
        kit.append(kit_train_rate(cfg, task, batches, "labels"))
        ref.append(hf_train_rate(batches, args.threads))
    return {"batch_size": 32, "steps_per_round": len(batches),
            "mean_tokens_per_batch_row": round(float(np.mean([b["input_ids"].shape[1] for b in batches])), 1),
            "kit_samples_per_s": round(statistics.median(kit), 2),
            "transformers_samples_per_s": round(statistics.median(ref), 2),
            "train_ratio": round(statistics.median(kit) / statistics.median(ref), 3),
            "train_ratio_per_round": [round(k / r, 3) for k, r in zip(kit, ref)], "target_train_ratio": 1.0}


def accuracy_section(cfg, task, weights: str, args) -> dict:
    from safetensors.numpy import load_file

    from kits import nlp

    limit = args.eval_samples
    overrides = [f"val_dataset.max_samples={limit}"] if limit else []
    kit = nlp.evaluate(CONFIG, weights, overrides)
    state = dict(load_file(weights))
    ref = hf_accuracy(state, [_numpy(b) for b in dev_batches(cfg, task, limit)], args.threads)
    return {"weights": weights, "dev_samples": limit or "all", "kit_accuracy": round(kit["accuracy"], 4),
            "transformers_accuracy_same_weights": round(ref, 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="fine-tuned minilm_l6_sst2 weights; without them accuracy is skipped")
    ap.add_argument("--eval-samples", type=int, default=None, help="first N dev phrases (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--child-hf-latency", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_hf_latency:
        return child(args)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by both frameworks' thread pools at import
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        print(json.dumps({"benchmark": "nlp", "error": f"{exc}; install the baseline with "
                          "`pip install -e '.[bench-nlp]'` (or `make bench-nlp`)"}))
        return 1
    import paddle

    from kits.core.config import load_config
    from kits.nlp import export, task_for

    cfg = load_config(CONFIG)
    task = task_for(cfg)
    result = {"benchmark": "nlp", "model": "all-MiniLM-L6-v2 sequence classifier", "threads": args.threads,
              "seq_len": args.seq, "versions": {"paddle": paddle.__version__, "torch": torch.__version__,
                                               "transformers": transformers.__version__}}
    if args.weights:
        result["accuracy"] = accuracy_section(cfg, task, args.weights, args)
    result["train"] = train_section(cfg, task, args)
    with tempfile.TemporaryDirectory() as tmp:
        export(CONFIG, args.weights, formats=("paddle", "onnx", "openvino"), output=tmp)
        result["latency"] = latency_section(Path(tmp), args)
    result["efficiency"] = efficiency_section(result["latency"], args.seq, args.threads)
    result["target_latency_ratio"] = 1.0
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
