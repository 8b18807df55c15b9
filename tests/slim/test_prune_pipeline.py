"""prune -> distill -> fine-tune through the shared Trainer -> export, on a tiny detector: the
exported compressed model really is smaller and runs in the engine."""

import sys
from pathlib import Path

import numpy as np
import pytest

from kits.deploy import Predictor
from kits.detection.task import DetectionTask
from kits.slim import compress, load_recipe

sys.path.insert(0, str(Path(__file__).parent))
from slim_tiny import tiny_detection_cfg  # noqa: E402

RECIPE = """strategies:
  - {type: Prune, criterion: l1_norm, flops_reduction: 0.3, trace_size: 96}
  - type: Distill
    pairs: [{student: head.cls_out.0, loss: bce}, {student: neck, loss: mse}]
finetune: {trainer.iters: 2}
report: {backends: [onnxruntime], threads: 1, rounds: 1, iters: 3, eval_samples: 4, max_deploy_gap: 1.0}
"""


def compress_tiny(out: Path, recipe_text: str) -> dict:
    """Run the recipe text on the tiny detector; the result goes to ``out/slim``."""
    (out / "recipe.yml").write_text(recipe_text)
    return compress(tiny_detection_cfg(out), load_recipe(out / "recipe.yml"), lambda c: DetectionTask(),
                    output=out / "slim")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("prune")
    return out / "slim", compress_tiny(out, RECIPE)


def test_pruned_export_is_smaller(run):
    _, report = run
    base, comp = report["baseline"], report["compressed"]
    assert comp["flops"] < 0.75 * base["flops"]
    assert comp["params"] < base["params"] and comp["size_mb"] < base["size_mb"]
    assert report["info"]["prune"]["flops_after"] < report["info"]["prune"]["flops_before"]
    assert report["info"]["finetune"]["steps"] == 2
    assert set(report["info"]["distill"]["last_losses"]) == {"distill_0", "distill_1"}


def _output_shapes(model_dir):
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype("float32")
    return [a.shape for a in Predictor(model_dir, "onnxruntime").run_raw([x])]


def test_pruned_export_runs_with_the_same_outputs(run):
    out, _ = run
    # class and box maps keep their layout
    assert _output_shapes(out / "baseline") == _output_shapes(out / "compressed")
    assert "precision: fp32" in (out / "compressed" / "deploy.yml").read_text()


def test_pruned_weights_load_into_the_configs_model(run, tmp_path):
    """The fine-tune's final weights are the student alone, marked as pruned: loading them narrows
    the config's layers, and that model exports to what the pipeline shipped."""
    from kits.core.pretrained import read_metadata
    from kits.detection import api

    out, report = run
    weights = out / "finetune" / "final_model.safetensors"
    assert read_metadata(weights)["pruned_channels"] == "true"
    model = api.load_model(tiny_detection_cfg(out), weights)
    assert sum(int(p.size) for p in model.parameters()) == report["compressed"]["params"]
    api.export(tiny_detection_cfg(out), weights, formats=("onnx",), output=tmp_path / "reloaded")
    x = np.random.default_rng(1).standard_normal((1, 3, 96, 96)).astype("float32")
    shipped = Predictor(out / "compressed", "onnxruntime").run_raw([x])
    reloaded = Predictor(tmp_path / "reloaded", "onnxruntime").run_raw([x])
    for a, b in zip(shipped, reloaded):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_wrong_narrowing_is_a_clear_error(tmp_path):
    """A pruned checkpoint wider than the config's model (another config) is refused by name."""
    from kits.core.errors import CheckpointError
    from kits.core.pretrained import PRUNED_KEY, save_state
    from kits.detection import api

    model = api.load_model(tiny_detection_cfg(tmp_path))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    key = next(k for k, v in state.items() if k.endswith("conv.weight") and v.shape[0] > 1)
    state[key] = np.zeros((state[key].shape[0] + 1, *state[key].shape[1:]), "float32")
    save_state(state, tmp_path / "wide.safetensors", metadata={PRUNED_KEY: "true"})
    with pytest.raises(CheckpointError, match=f"{key}: the pruned checkpoint's shape"):
        api.load_model(tiny_detection_cfg(tmp_path), tmp_path / "wide.safetensors")


COMPOSED = """strategies:
  - {type: Prune, criterion: fpgm, ratio: 0.4, trace_size: 96, channel_multiple: 8}
  - {type: PTQ, calib_samples: 4, algo: minmax, quant_format: qdq}
finetune: {trainer.iters: 1}
report: {backends: [onnxruntime], threads: 1, rounds: 1, iters: 3, eval_samples: 4, max_deploy_gap: 1.0}
"""


def test_prune_then_ptq_in_one_recipe(tmp_path):
    """A pruned model is quantized in the same run."""
    report = compress_tiny(tmp_path, COMPOSED)
    assert report["compressed"]["params"] < report["baseline"]["params"]
    assert report["compressed"]["precision"] == "int8"
    assert "precision: int8" in (tmp_path / "slim" / "compressed" / "deploy.yml").read_text()
    assert _output_shapes(tmp_path / "slim" / "baseline") == _output_shapes(tmp_path / "slim" / "compressed")


PRUNE_DISTILL_QAT = """strategies:
  - {type: Prune, criterion: fpgm, ratio: 0.4, trace_size: 96, channel_multiple: 8}
  - type: Distill
    pairs: [{student: head.cls_out.0, loss: bce}, {student: neck, loss: mse}]
  - {type: QAT, weight_bits: 7, skip: [backbone.stem.*]}
finetune: {trainer.iters: 2}
report: {backends: [onnxruntime], threads: 1, rounds: 1, iters: 3, eval_samples: 4, max_deploy_gap: 1.0}
"""


def test_prune_distill_qat_in_one_recipe(tmp_path):
    """QAT after a distillation quantizes the student the distillation trains, not the wrapper."""
    from kits.slim.qat import quantizable_layers

    report = compress_tiny(tmp_path, PRUNE_DISTILL_QAT)
    info = report["info"]
    assert report["compressed"]["params"] < report["baseline"]["params"]
    assert report["compressed"]["precision"] == "int8" and info["finetune"]["steps"] == 2
    assert set(info["distill"]["last_losses"]) == {"distill_0", "distill_1"}
    assert info["qat"]["float_layers"] == ["backbone.stem.conv"]   # named as in the student
    convs = len(quantizable_layers(DetectionTask().build_model(tiny_detection_cfg(tmp_path / "plain"))))
    assert info["qat"]["quantized_layers"] == convs - 1 == info["qat_export"]["quantized_weights"] + \
        len(info["qat_export"]["layers_not_in_graph"])
    assert _output_shapes(tmp_path / "slim" / "baseline") == _output_shapes(tmp_path / "slim" / "compressed")
