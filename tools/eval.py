"""Evaluate weights on the config's val_dataset: python tools/eval.py -c CONFIG [-o weights=FILE ...]."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.core import cli  # noqa: E402

cli.quiet_environment()


def run():
    ap = cli.parser(__doc__)
    ap.add_argument("--weights", default=None, help="weight file or registered name (default: pretrained)")
    args = ap.parse_args()
    cli.setup_logging()
    from kits.core.config import load_config

    overrides, weights = cli.pop_option(args.opt, "weights")
    cfg = load_config(args.config, overrides)
    metrics = cli.kit_api(cfg).evaluate(cfg, weights=args.weights or weights)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    cli.main(run)
