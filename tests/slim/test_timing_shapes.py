"""Which input shapes a compression report times the models at."""

from pathlib import Path

import numpy as np

from kits.deploy.spec import DeploySpec, InputInfo
from kits.slim.report import timing_shapes


def _spec(shape, dtype="float32", pad=None):
    info = InputInfo("image", dtype, shape, [1 if d < 0 else d for d in shape])
    pre = [{"type": "Normalize"}] + ([{"type": "Pad", "multiple_of": pad}] if pad else [])
    return DeploySpec(Path("."), [info], ["logits"], {}, preprocess=pre)


def test_free_size_image_is_timed_at_the_padded_validation_size():
    batch = {"image": np.zeros((1, 3, 357, 478), np.float32), "label": np.zeros((1, 357, 478))}
    assert timing_shapes(_spec([-1, 3, -1, -1], pad=8), batch) == {"image": [1, 3, 360, 480]}
    assert timing_shapes(_spec([-1, 3, -1, -1]), batch) == {"image": [1, 3, 357, 478]}


def test_fixed_size_and_token_inputs_keep_the_export_example():
    image = {"image": np.zeros((1, 3, 416, 416), np.float32)}
    assert timing_shapes(_spec([-1, 3, 416, 416]), image) is None
    tokens = {"image": np.zeros((1, 37), np.int64)}
    assert timing_shapes(_spec([-1, -1], dtype="int64"), tokens) is None
