"""Convert YOLO txt or labelme JSON annotations into a COCO detection JSON.

    python tools/to_coco.py yolo IMAGE_DIR --class-names names.txt [--labels LABEL_DIR] --out ann.json
    python tools/to_coco.py labelme JSON_DIR [--class-names names.txt] --out ann.json

Then train with `train_dataset: {type: COCODetection, root: ROOT, ann_file: ann.json, image_dir: DIR}`,
where ROOT/DIR is the image folder (yolo) or the labelme folder (file names are relative to it).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.core import cli  # noqa: E402

cli.quiet_environment()


def run():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("format", choices=["yolo", "labelme"])
    ap.add_argument("src", help="image folder (yolo) or folder of labelme .json files")
    ap.add_argument("--class-names", default=None, help="one class name per line, in id order")
    ap.add_argument("--labels", default=None, help="yolo: folder of .txt labels mirroring the images")
    ap.add_argument("--out", required=True, help="COCO JSON to write")
    args = ap.parse_args()
    from kits.core.errors import ConfigError
    from kits.detection.data.convert import labelme_to_coco, write_coco, yolo_to_coco

    names = None
    if args.class_names:
        names = [n.strip() for n in Path(args.class_names).read_text(encoding="utf-8").splitlines() if n.strip()]
    if args.format == "yolo":
        if not names:
            raise ConfigError("yolo labels hold class numbers: give --class-names FILE")
        coco = yolo_to_coco(args.src, names, args.labels)
    else:
        coco = labelme_to_coco(args.src, names)
    write_coco(coco, args.out)
    print(json.dumps({"images": len(coco["images"]), "boxes": len(coco["annotations"]),
                      "classes": [c["name"] for c in coco["categories"]], "out": args.out}))


if __name__ == "__main__":
    cli.main(run)
