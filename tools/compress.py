"""Compress a model with a recipe and judge it on the exported file.

python tools/compress.py -c CONFIG --slim configs/slim/RECIPE.yml [-o weights=FILE KEY=VALUE ...]
    [--slim-opt report.threads=1 ...] [--output DIR]
python tools/compress.py -c CONFIG --sensitivity [--ratios 0.1 0.3 0.5] [--samples 32] [--params 'neck.*' ...]
    [-o weights=FILE]

Writes baseline/, compressed/, ship/ (the model to deploy) and report.json / report.md; with
--sensitivity, a table and plot of the metric when each channel group alone is pruned.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.core import cli  # noqa: E402

cli.quiet_environment()


def run():
    ap = cli.parser(__doc__)
    ap.add_argument("--slim", help="compression recipe (configs/slim/*.yml)")
    ap.add_argument("--sensitivity", action="store_true", help="pruning sensitivity analysis instead")
    ap.add_argument("--ratios", nargs="+", type=float, default=[0.1, 0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--criterion", default="l1_norm", help="l1_norm or fpgm (sensitivity)")
    ap.add_argument("--samples", type=int, default=32, help="validation samples per score (sensitivity)")
    ap.add_argument("--params", nargs="+", default=None, metavar="PATTERN",
                    help="only the channel groups whose parameter name matches (sensitivity; default: all)")
    ap.add_argument("--slim-opt", nargs="+", default=[], metavar="KEY=VALUE", help="override recipe keys")
    ap.add_argument("--weights", default=None, help="weight file or registered name (default: -o weights=...)")
    ap.add_argument("--output", default=None, help="output directory (default: OUTPUT_DIR/compress/RECIPE)")
    args = ap.parse_args()
    if not args.slim and not args.sensitivity:
        ap.error("give --slim RECIPE or --sensitivity")
    cli.setup_logging()
    from kits.core.config import load_config
    from kits.slim import load_recipe

    if args.sensitivity:
        return sensitivity(args)
    recipe = load_recipe(args.slim, args.slim_opt)  # a bad recipe fails before any model is built
    overrides, weights = cli.pop_option(args.opt, "weights")
    cfg = load_config(args.config, overrides)
    report = cli.kit_api(cfg).compress(cfg, recipe, weights=args.weights or weights, output=args.output)
    keys = ("metric", "target_engine", "accuracy_drop", "speedup", "deploy_gap", "shipped", "notes")
    print(json.dumps({k: report[k] for k in keys}, indent=2, default=str))


def sensitivity(args):
    from kits.core.config import load_config
    from kits.slim.pipeline import analyze_sensitivity

    overrides, weights = cli.pop_option(args.opt, "weights")
    cfg = load_config(args.config, overrides)
    task_for = cli.kit_api(cfg).task_for
    result = analyze_sensitivity(cfg, task_for, weights=args.weights or weights, ratios=args.ratios,
                                 criterion=args.criterion, samples=args.samples, output=args.output,
                                 params=args.params)
    print(json.dumps({"metric": result["metric"], "baseline": result["baseline"], "groups": len(result["groups"])}))


if __name__ == "__main__":
    cli.main(run)
