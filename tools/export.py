"""Export a model: python tools/export.py -c CONFIG -o weights=FILE --format onnx openvino ... [--output DIR]."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.core import cli  # noqa: E402

cli.quiet_environment()


def parse_options(items: list[str]) -> dict:
    """``mnn.weight_quant_bits=8 openvino.fp16=true`` -> {'mnn': {'weight_quant_bits': 8}, ...}."""
    from kits.core.config import parse_override
    from kits.core.errors import ConfigError

    options: dict = {}
    for item in items:
        keys, value = parse_override(item)
        if len(keys) != 2:
            raise ConfigError(f"bad --option '{item}': expected FORMAT.KEY=VALUE, e.g. mnn.weight_quant_bits=8")
        options.setdefault(keys[0], {})[keys[1]] = value
    return options


def run():
    from kits.export.formats import FORMATS, plan

    ap = cli.parser(__doc__)
    ap.add_argument("--format", dest="formats", nargs="+", default=["onnx"], metavar="FORMAT",
                    help=f"one or more of: {', '.join(FORMATS)}")
    ap.add_argument("--option", nargs="+", default=[], metavar="FORMAT.KEY=VALUE",
                    help="format options, e.g. mnn.weight_quant_bits=8 openvino.fp16=true")
    ap.add_argument("--weights", default=None, help="weight file or registered name (default: -o weights=...)")
    ap.add_argument("--output", default=None, help="directory for the model files and deploy.yml")
    args = ap.parse_args()
    cli.setup_logging()
    from kits.core.config import load_config

    options = parse_options(args.option)
    plan(args.formats, options)  # fail on a bad format or option before the model is built
    overrides, weights = cli.pop_option(args.opt, "weights")
    cfg = load_config(args.config, overrides)
    extra = {"options": options} if options else {}
    result = cli.kit_api(cfg).export(cfg, weights=args.weights or weights, formats=args.formats,
                                     output=args.output, **extra)
    summary = {"files": {k: str(v) for k, v in dict(result).items()},
               "parity": getattr(result, "parity", None), "notes": getattr(result, "notes", [])}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    cli.main(run)
