"""Predict with a trained model: python tools/predict.py -c CONFIG [-o weights=FILE ...] [-i FILE|- ...].

Prints one JSON line per input (texts, one per line, from files or stdin for the NLP kit).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.core import cli  # noqa: E402

cli.quiet_environment()


def run():
    ap = cli.parser(__doc__)
    ap.add_argument("-i", "--input", nargs="+", default=["-"], help="input files; '-' reads stdin (default)")
    ap.add_argument("--weights", default=None, help="weight file or registered name (default: pretrained)")
    ap.add_argument("--output", default=None, help="also write the results to this file")
    args = ap.parse_args()
    cli.setup_logging()
    from kits.core.config import load_config
    from kits.core.errors import ConfigError

    overrides, weights = cli.pop_option(args.opt, "weights")
    cfg = load_config(args.config, overrides)
    api = cli.kit_api(cfg)
    if not hasattr(api, "predict_files"):
        raise ConfigError(f"the '{cfg.get('kit')}' kit has no file prediction yet")
    for result in api.predict_files(cfg, args.weights or weights, args.input, args.output):
        print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    cli.main(run)
