"""The main job end to end on bundled defaults: fine-tune, evaluate, export, deploy-infer.

Fine-tunes the bundled COCO PicoDet-S-416 on the committed road-sign subset (data/roadsign_mini),
evaluates the best weights, exports them to ONNX and OpenVINO with deploy.yml, and runs the exported
model through the light runtime (kits.deploy, ONNX Runtime), leaving annotated images, JSON lines and
the metrics in the output folder.

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
SHOW_SCORE = 0.3  # boxes drawn and listed; evaluation uses every box above 0.025


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
    from kits.deploy import Predictor
    from kits.deploy.visualize import draw

    cfg = load_config(args.config, args.opt)
    out = Path(cfg["trainer"]["output_dir"])
    print("== 1/4 fine-tune", flush=True)
    det.train(cfg)
    weights = latest_weights(out)
    print(f"== 2/4 evaluate {weights}", flush=True)
    metrics = det.evaluate(cfg, weights=weights)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print("== 3/4 export", flush=True)
    exported = det.export(cfg, weights, formats=("onnx", "openvino"), output=out / "export")
    print("== 4/4 deploy: ONNX Runtime through kits.deploy", flush=True)
    predictor = Predictor(out / "export", backend="onnxruntime")
    val = det.VOCDetection(cfg["val_dataset"]["root"], cfg["val_dataset"]["list"])
    (out / "deploy").mkdir(exist_ok=True)
    with open(out / "deploy" / "results.jsonl", "w") as lines:
        for rec in val.records[:4]:
            boxes = predictor.predict(str(rec.image))["boxes"]
            boxes = boxes[boxes[:, 1] >= SHOW_SCORE]
            lines.write(json.dumps({"image": str(rec.image), "boxes": [[round(float(v), 3) for v in row]
                                                                       for row in boxes]}) + "\n")
            image = draw(cv2.imread(str(rec.image)), {"boxes": boxes}, val.class_names)
            cv2.imwrite(str(out / "deploy" / rec.image.name), image)
    summary = {k: round(metrics[k], 4) for k in ("mAP", "AP50", "AP75")}
    print(json.dumps({"metrics": summary, "export_parity_max_abs_diff": exported.parity,
                      "outputs": [str(out / "metrics.json"), str(weights), str(exported.deploy_file),
                                  str(out / "deploy")]}, indent=2))


if __name__ == "__main__":
    cli.main(run)
