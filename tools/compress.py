"""Compress a model with a recipe and judge it on the exported file.

python tools/compress.py -c CONFIG --slim configs/slim/RECIPE.yml [-o weights=FILE KEY=VALUE ...]
    [--slim-opt report.threads=1 ...] [--output DIR]

Writes baseline/, compressed/, ship/ (the model to deploy) and report.json / report.md.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.core import cli  # noqa: E402

cli.quiet_environment()


def run():
    ap = cli.parser(__doc__)
    ap.add_argument("--slim", required=True, help="compression recipe (configs/slim/*.yml)")
    ap.add_argument("--slim-opt", nargs="+", default=[], metavar="KEY=VALUE", help="override recipe keys")
    ap.add_argument("--weights", default=None, help="weight file or registered name (default: -o weights=...)")
    ap.add_argument("--output", default=None, help="output directory (default: OUTPUT_DIR/compress/RECIPE)")
    args = ap.parse_args()
    cli.setup_logging()
    from kits.core.config import load_config
    from kits.slim import load_recipe

    recipe = load_recipe(args.slim, args.slim_opt)  # a bad recipe fails before any model is built
    overrides, weights = cli.pop_option(args.opt, "weights")
    cfg = load_config(args.config, overrides)
    report = cli.kit_api(cfg).compress(cfg, recipe, weights=args.weights or weights, output=args.output)
    keys = ("metric", "target_engine", "accuracy_drop", "speedup", "deploy_gap", "shipped", "notes")
    print(json.dumps({k: report[k] for k in keys}, indent=2, default=str))


if __name__ == "__main__":
    cli.main(run)
