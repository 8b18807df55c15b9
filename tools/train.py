"""Train a model: python tools/train.py -c CONFIG [-o KEY=VALUE ...] [--resume [CKPT]] [--dry-run]."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.core import cli  # noqa: E402

cli.quiet_environment()


def run():
    ap = cli.parser(__doc__)
    ap.add_argument("--resume", nargs="?", const=True, default=None,
                    help="continue from CKPT, or from the newest valid checkpoint in the output dir")
    ap.add_argument("--dry-run", action="store_true", help="validate and build everything, then stop")
    args = ap.parse_args()
    cli.setup_logging()
    from kits.core.config import load_config

    cfg = load_config(args.config, args.opt)
    api = cli.kit_api(cfg)
    if args.dry_run:
        print(json.dumps(api.train(cfg, dry_run=True), indent=2))
        return
    api.train(cfg, resume=args.resume)


if __name__ == "__main__":
    cli.main(run)
