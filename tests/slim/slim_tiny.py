"""A tiny road-sign detection setup for compression tests: PicoDet with ESNet-0.25 at 96x96 on
the committed CC0 subset (data/roadsign_mini), small enough for seconds per run on one thread."""

from pathlib import Path

from kits.core.config import Config

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data/roadsign_mini"


def tiny_detection_cfg(out: Path, val_images: int = 4) -> Config:
    lines = (DATA / "valid.txt").read_text().splitlines()[:val_images]
    val_list = out / "valid_small.txt"
    out.mkdir(parents=True, exist_ok=True)
    val_list.write_text("\n".join(lines) + "\n")
    norm = {"type": "Normalize"}
    data = {
        "kit": "detection",
        "model": {"type": "PicoDet", "input_size": 96,
                  "backbone": {"type": "ESNet", "scale": 0.25},
                  "neck": {"type": "CSPPAN", "out_channels": 32},
                  "head": {"type": "PicoHead", "num_classes": 4, "in_channels": 32, "feat_channels": 32,
                           "num_convs": 1}},
        "train_dataset": {"type": "VOCDetection", "root": str(DATA), "list": "train.txt",
                          "label_list": "label_list.txt",
                          "transforms": [{"type": "Resize", "target_size": 96}, norm]},
        "val_dataset": {"type": "VOCDetection", "root": str(DATA), "list": str(val_list),
                        "label_list": "label_list.txt",
                        "transforms": [{"type": "Resize", "target_size": 96}, norm]},
        "optimizer": {"type": "AdamW", "lr": 1e-3},
        "trainer": {"iters": 2, "batch_size": 2, "num_workers": 0, "progress": False, "visualdl": False,
                    "best_metric": "mAP", "eval_interval": 1000, "output_dir": str(out / "train")},
        "export": {"postprocess": {"score_threshold": 0.01}},
    }
    return Config(data, path="<tiny detection>")
