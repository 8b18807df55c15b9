"""Convert PaddleDetection's PicoDet-S ONNX exports into the detection kit's safetensors weights.

    python tools/convert_picodet_onnx.py [--src DIR_WITH_ONNX] [--out kits/detection/pretrained]

The conv weights are read from the ONNX initializers and Constant nodes (onnx package) and
paired, in graph order, with the kit's conv layers in execution order (shapes checked). Folded
conv biases go to the BatchNorm shift with unit scale, zero mean and variance ``1 - eps``; the
shared 80 + 32 channel output conv of each level is split into ``cls_out`` and ``reg_out``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def onnx_convs(path):
    graph = onnx.load(str(path)).graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"})
    return [(consts[n.input[1]], consts[n.input[2]]) for n in graph.node if n.op_type == "Conv"]


def conv_order(model, size):
    import paddle

    names = {id(layer): name for name, layer in model.named_sublayers()}
    order = []
    hooks = [layer.register_forward_pre_hook(lambda lay, _: order.append(names[id(lay)]))
             for layer in model.sublayers() if isinstance(layer, paddle.nn.Conv2D)]
    model.eval()
    model.export_forward(paddle.zeros([1, 3, size, size]))
    for hook in hooks:
        hook.remove()
    return order


def convert(onnx_path, size):
    from kits.detection.models import PicoDet

    model = PicoDet(input_size=size)
    layers = dict(model.named_sublayers())
    queue, state = conv_order(model, size), {}
    for weight, bias in onnx_convs(onnx_path):
        row = 0
        while row < weight.shape[0]:  # one ONNX conv may feed several kit convs (cls_out + reg_out)
            name = queue.pop(0)
            conv = layers[name]
            n = conv.weight.shape[0]
            w, b = weight[row:row + n], bias[row:row + n].astype(np.float32)
            if tuple(conv.weight.shape) != w.shape:
                raise ValueError(f"{name}: kit {tuple(conv.weight.shape)} vs onnx {w.shape}")
            state[f"{name}.weight"] = w
            if conv.bias is not None:
                state[f"{name}.bias"] = b
            else:
                bn = name.rsplit(".", 1)[0] + ".bn"
                state.update({f"{bn}.weight": np.ones_like(b), f"{bn}.bias": b, f"{bn}._mean": np.zeros_like(b),
                              f"{bn}._variance": np.float32(1) - np.full_like(b, layers[bn]._epsilon)})
            row += n
    if queue:
        raise ValueError(f"kit convs left without ONNX weights: {queue[:3]}")
    return model, state


def main():
    from kits.core.fileio import sha256sum
    from kits.core.pretrained import load_into, save_state

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[2] / "shared/weights/coco_det"))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "kits/detection/pretrained"))
    args = parser.parse_args()
    for size in (320, 416):
        name = f"picodet_s_{size}_coco"
        model, state = convert(Path(args.src) / f"{name}.onnx", size)
        load_into(model, state, strict=True)  # every kit tensor is covered, nothing left over
        meta = {"source": "PaddleDetection PP-PicoDet-S (legacy, COCO), Paddle2ONNX export via hpc203/picodet-onnxruntime",
                "license": "Apache-2.0 (PaddleDetection)", "model": "PicoDet", "input_size": str(size)}
        path = save_state(state, Path(args.out) / f"{name}.safetensors", metadata=meta)
        print(f"{name}: {len(state)} tensors, sha256 {sha256sum(path)}")


if __name__ == "__main__":
    main()
