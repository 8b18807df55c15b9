"""Convert labelme JSON polygons into a segmentation dataset folder.

    python tools/labelme_to_mask.py SRC_DIR OUT_DIR [--class-names FILE] [--list train_list.txt]

OUT_DIR gets images/, masks/ (class-id PNGs, background 0), class_names.txt and the file list,
ready for `FileListSegmentation(root=OUT_DIR, list=..., class_names=class_names.txt)`.
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
    ap.add_argument("src", help="folder of labelme .json files (images beside them or embedded)")
    ap.add_argument("out", help="output dataset folder")
    ap.add_argument("--class-names", default=None,
                    help="file with the foreground class names in id order (default: sorted labels found)")
    ap.add_argument("--list", default="train_list.txt", help="name of the file list to write")
    args = ap.parse_args()
    cli.setup_logging()
    from kits.segmentation.data.labelme import labelme_to_masks

    names = None
    if args.class_names:
        names = [n.strip() for n in Path(args.class_names).read_text(encoding="utf-8").splitlines() if n.strip()]
    print(json.dumps(labelme_to_masks(args.src, args.out, names, args.list), indent=2))


if __name__ == "__main__":
    cli.main(run)
