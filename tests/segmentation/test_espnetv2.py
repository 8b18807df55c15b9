"""ESPNetv2: the model contract, weight conversion, and parity with the original PyTorch model.

tests/fixtures/espnetv2_ref.npz holds argmax maps and sampled logits of the original PyTorch
implementation (EdgeNets weights) on 2 CamVid val images resized to each model's input size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest

from kits.segmentation import pretrained  # noqa: F401  (registers the bundled weights)
from kits.segmentation.models import MODELS

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "espnetv2_ref.npz"
TAGS = {"city_512x256": "espnetv2_cityscapes_512x256", "city_1024x512": "espnetv2_cityscapes_1024x512",
        "pascal_384x384": "espnetv2_pascal_384x384"}


def test_contract_on_odd_size():
    paddle.seed(0)
    model = MODELS.build({"type": "ESPNetv2", "num_classes": 3, "scale": 1.0})
    image = paddle.randn([1, 3, 70, 90])
    model.eval()
    with paddle.no_grad():
        logits = model({"image": image})["logits"]
    assert logits.shape == [1, 3, 70, 90]
    model.train()
    loss = model({"image": image, "label": paddle.randint(0, 3, [1, 70, 90], dtype="int64")})["loss"]
    assert loss.shape == [] and np.isfinite(float(loss))
    loss.backward()


@pytest.mark.parametrize("tag", sorted(TAGS))
def test_conversion_uses_every_tensor(tag):
    from kits.core.pretrained import load_state
    from kits.core.torch_pickle import load_torch_pickle
    from kits.segmentation.models.espnetv2 import convert_torch_state

    path = SHARED / "weights" / "seg" / f"espnetv2_s_2.0_{tag}.pth"
    if not path.is_file():
        pytest.skip(f"needs {path} (shared weights beside the repository)")
    raw = load_torch_pickle(path)
    state = convert_torch_state(raw)
    dropped = {k for k in raw if k.endswith("num_batches_tracked") or "_0.eesp.module_act" in k}
    assert len(state) == len(raw) - len(dropped)
    own = MODELS.build(pretrained.PRETRAINED[TAGS[tag]]["model"]).state_dict()
    assert set(state) == set(own)
    bundled = load_state(TAGS[tag])
    assert all(np.array_equal(bundled[k], state[k]) for k in own)


def _run(tag: str, limit: int):
    import cv2

    camvid = SHARED / "datasets" / "camvid"
    if not camvid.is_dir():
        pytest.skip(f"needs {camvid} (shared data beside the repository)")
    ref = np.load(FIXTURE)
    name = TAGS[tag]
    size = tuple(pretrained.PRETRAINED[name]["preprocess"]["size"])
    images = [pretrained.normalize(cv2.resize(cv2.imread(str(camvid / n)), size), name)
              for n in ref["names"][:limit]]
    model = pretrained.build_pretrained(name)
    with paddle.no_grad():
        logits = model.export_forward(paddle.to_tensor(np.stack(images))).numpy()
    assert (logits.argmax(1) == ref[f"{tag}_argmax"][:limit]).mean() >= 0.999
    for i in range(limit):
        sampled = logits[i][:, ref[f"{tag}_sample_y"][i], ref[f"{tag}_sample_x"][i]]
        assert np.abs(sampled - ref[f"{tag}_sample_logits"][i]).max() < 1e-3


@pytest.mark.parametrize("tag", sorted(TAGS))
def test_parity_with_reference(tag):
    _run(tag, limit=2)


def test_export_needs_fixed_size(tmp_path):
    from kits.core.errors import ConfigError

    model = MODELS.build({"type": "ESPNetv2", "num_classes": 4, "scale": 0.5})
    model.eval()
    with pytest.raises(ConfigError, match="fixed input size"):
        model.input_spec()
    static = paddle.jit.to_static(model.export_forward, input_spec=model.input_spec(64, 96), full_graph=True)
    paddle.jit.save(static, str(tmp_path / "espnetv2"))
    image = paddle.randn([2, 3, 64, 96])
    out = paddle.jit.load(str(tmp_path / "espnetv2"))(image).numpy()
    np.testing.assert_allclose(out, model.export_forward(image).numpy(), atol=1e-5)
