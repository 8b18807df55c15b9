"""The main job end to end on bundled defaults: fine-tune, evaluate, predict.

Fine-tunes the bundled COCO PicoDet-S-416 on the committed road-sign subset (data/roadsign_mini),
evaluates the best weights, and writes an annotated image and the metrics to the output folder.

    python tools/demo.py [-c configs/detection/picodet_s_416_roadsign_mini.yml] [-o KEY=VALUE ...]
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kits.core import cli  # noqa: E402

cli.quiet_environment()
DEFAULT = ROOT / "configs/detection/picodet_s_416_roadsign_mini.yml"


def run():
    ap = cli.parser(__doc__)
    ap.set_defaults(config=str(DEFAULT))
    for action in ap._actions:
        if action.dest == "config":
            action.required = False
    args = ap.parse_args()
    cli.setup_logging()
    import cv2

    from kits import detection as det
    from kits.core.config import load_config
    from kits.core.runner import latest_weights

    cfg = load_config(args.config, args.opt)
    out = Path(cfg["trainer"]["output_dir"])
    print("== 1/3 fine-tune", flush=True)
    det.train(cfg)
    weights = latest_weights(out)
    print(f"== 2/3 evaluate {weights}", flush=True)
    metrics = det.evaluate(cfg, weights=weights)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print("== 3/3 predict", flush=True)
    model = det.load_model(cfg, weights)
    val = det.VOCDetection(cfg["val_dataset"]["root"], cfg["val_dataset"]["list"])
    image_path = val.records[0].image
    dets = det.predict(model, [image_path])[0]
    drawn = det.visualize(cv2.imread(str(image_path)), dets, val.class_names)
    cv2.imwrite(str(out / "prediction.jpg"), drawn)
    summary = {k: round(metrics[k], 4) for k in ("mAP", "AP50", "AP75")}
    print(json.dumps({"metrics": summary, "detections_on": str(image_path), "boxes": len(dets),
                      "outputs": [str(out / "metrics.json"), str(out / "prediction.jpg"), str(weights)]}, indent=2))


if __name__ == "__main__":
    cli.main(run)
