"""Structured pruning (kits.slim.prune) and sensitivity analysis on tiny real models of each kit."""

import importlib
import json
import math

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
pytest.importorskip("paddleslim")

from kits.core.errors import ConfigError  # noqa: E402
from kits.detection.registry import MODELS as DET_MODELS  # noqa: E402
from kits.nlp.registry import MODELS as NLP_MODELS  # noqa: E402
from kits.segmentation.registry import MODELS as SEG_MODELS  # noqa: E402
from kits.slim.base import STRATEGIES, SlimContext  # noqa: E402
from kits.slim.prune import Prune, PruneSession, aligned_ratio  # noqa: E402
from kits.slim.sensitivity import sensitivity, write_sensitivity  # noqa: E402

for _kit in ("detection", "nlp", "segmentation"):  # fill the kits' registries
    importlib.import_module(f"kits.{_kit}.models")

# ESNet with 2 blocks per stage keeps every block type (SE down-sampling blocks, split + channel-shuffle
# blocks, depthwise convs) at a third of the graph: tracing and to_static dominate the test time
TINY_PICODET = {"type": "PicoDet", "backbone": {"type": "ESNet", "scale": 0.25, "stage_repeats": [2, 2, 2],
                                                "channel_ratio": [0.875, 0.5, 0.5, 0.5, 0.5, 0.5]},
                "neck": {"type": "CSPPAN", "out_channels": 32},
                "head": {"type": "PicoHead", "num_classes": 3, "in_channels": 32, "feat_channels": 32, "num_convs": 1},
                "input_size": 64}
TINY_LITESEG = {"type": "PPLiteSeg", "num_classes": 3, "backbone": {"type": "STDCNet", "base": 16},
                "arm_channels": [16, 16, 16], "head_channels": [16, 16, 16], "sppm_channels": 16}
TINY_ESPNET = {"type": "ESPNet", "num_classes": 3, "p": 1, "q": 1}
TINY_ENCODER = {"type": "TransformerEncoder", "vocab_size": 50, "hidden_size": 32, "num_layers": 2, "num_heads": 4,
                "intermediate_size": 64, "max_position": 64}


def _build(registry, cfg):
    paddle.seed(0)
    return registry.build(cfg)


def _prune(model, **fields):
    ctx = SlimContext(cfg=None, task=None, model=model, out_dir=None)
    STRATEGIES.build({"type": "Prune", **fields}).apply(ctx)
    return ctx


def _shapes(model):
    return {n: list(p.shape) for n, p in model.named_parameters()}


def _det_batch():
    rng = np.random.default_rng(0)
    boxes = np.array([[[4, 8, 40, 44], [30, 30, 60, 58]], [[10, 12, 50, 50], [0, 0, 0, 0]]], np.float32)
    return {"image": paddle.to_tensor(rng.normal(size=(2, 3, 64, 64)).astype(np.float32)),
            "gt_bbox": paddle.to_tensor(boxes), "gt_class": paddle.to_tensor(np.array([[0, 2], [1, 0]], np.int32)),
            "pad_gt_mask": paddle.to_tensor(np.array([[1, 1], [1, 0]], np.float32))}


class _Export(paddle.nn.Layer):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model.export_forward(image)


def _paddle_flops(model):
    model.eval()
    return paddle.flops(_Export(model), [1, 3, 64, 64])


def _finite_losses(model, batch):
    model.train()
    losses = model(batch)
    assert "loss" in losses and all(np.isfinite(float(v)) for v in losses.values())
    losses["loss"].backward()  # gradients flow through the pruned layers
    return losses


@pytest.fixture(scope="module")
def pruned_picodet():
    model = _build(DET_MODELS, TINY_PICODET)
    before = _shapes(model)
    ctx = _prune(model, flops_reduction=0.3)
    return model, before, ctx


def test_picodet_flops_target_reached(pruned_picodet):
    model, before, ctx = pruned_picodet
    info = ctx.info["prune"]
    assert info["flops_before"] == _paddle_flops(_build(DET_MODELS, TINY_PICODET))
    assert info["flops_after"] == _paddle_flops(model) and info["params_after"] < info["params_before"]
    # Channel counts are integers (a 16-channel group moves in 1/16 steps), so the search lands within
    # a couple of percent of the target; 0.02 also bounds the bisection tolerance (0.005) with margin.
    assert abs(info["flops_reduction"] - 0.3) <= 0.02
    assert ctx.needs_training and "FLOPs -" in ctx.notes[-1]
    changed = [n for n, s in _shapes(model).items() if s != before[n]]
    assert len(changed) > 50 and info["channels"]["backbone.stem.conv.weight"][1] < 24


@pytest.mark.parametrize("channels, ratio, multiple, kept", [
    (24, 0.2255, 8, 16),   # 19 left -> 16
    (96, 0.5685, 8, 40),   # 41 -> 40
    (96, 0.5, 8, 48),      # already a multiple
    (44, 0.75, 8, 8),      # 11 -> 8
    (96, 0.98, 8, 8),      # never below one multiple
    (46, 0.01, 8, 46),     # rounds up past the width: stays whole
    (8, 0.5, 8, 8),        # not wider than one multiple: stays whole
    (24, 0.2255, 1, 19),   # 1: the ratio as given
])
def test_aligned_ratio(channels, ratio, multiple, kept):
    aligned = aligned_ratio(channels, ratio, multiple)
    # PaddleSlim's pruners remove round(channels * ratio) filters
    assert channels - round(channels * aligned) == kept


def test_picodet_channel_multiple_keeps_multiples_of_8():
    model, whole = _build(DET_MODELS, TINY_PICODET), _build(DET_MODELS, TINY_PICODET)
    info = _prune(model, ratio=0.3, channel_multiple=8).info["prune"]
    changed = {m: c for m, c in info["channels"].items() if c[0] != c[1]}
    assert changed and all(after % 8 == 0 for _, after in changed.values()), changed
    assert info["channels"]["backbone.stem.conv.weight"] == [24, 16]   # 17 left by 0.3 -> 16
    assert info["ratios"]["backbone.stem.conv.weight"] == round(1 / 3, 4)   # the ratio applied is reported
    model.eval(), whole.eval()
    image = paddle.ones([1, 3, 64, 64])
    assert [t.shape for t in model.export_forward(image)] == [t.shape for t in whole.export_forward(image)]


def test_picodet_task_outputs_and_groups_consistent(pruned_picodet):
    model, before, _ = pruned_picodet
    after = _shapes(model)
    # the class and box convs keep their outputs (they feed model outputs: PaddleSlim skips leaves)
    for i in range(4):
        assert after[f"head.cls_out.{i}.weight"][0] == 3 and after[f"head.reg_out.{i}.weight"][0] == 32
    # residual add: both summands and the depthwise conv reading the sum shrink together
    width = after["neck.extra_from_input.pw.conv.weight"][0]
    assert width < before["neck.extra_from_input.pw.conv.weight"][0]
    assert after["neck.extra_from_output.pw.conv.weight"][0] == width
    dw = model.head.towers[3][0].dw.conv
    assert dw._groups == width == dw.weight.shape[0] == dw._in_channels
    depthwise = [lyr for lyr in model.sublayers() if isinstance(lyr, paddle.nn.Conv2D) and lyr._groups > 1]
    assert all(lyr._groups == lyr.weight.shape[0] == lyr._in_channels for lyr in depthwise)
    assert not [k for k in model.state_dict() if k.endswith("_backup")]


def test_picodet_runs_eval_train_and_export(pruned_picodet):
    model, _, _ = pruned_picodet
    batch = _det_batch()
    _finite_losses(model, batch)
    model.eval()
    with paddle.no_grad():
        out = model({"image": batch["image"]})
        eager = model.export_forward(batch["image"])
    assert [list(t.shape) for t in out["cls_scores"]] == [[2, 64, 3], [2, 16, 3], [2, 4, 3], [2, 1, 3]]
    static = paddle.jit.to_static(model.export_forward, input_spec=model.input_spec(), full_graph=True)
    traced = static(batch["image"])
    assert max(float((a - b).abs().max()) for a, b in zip(traced, eager)) < 1e-4


def _with_pruned_channels_zeroed(model, session, plan):
    """``model`` (unpruned) with every channel ``plan`` removes set to 0 where it is computed: after each
    conv / norm whose output channels the plan prunes. The pruned model must compute the same."""
    owner = {f"{layer_name}.{attr}": layer for layer_name, layer in model.named_sublayers()
             for attr, _ in layer.named_parameters(include_sublayers=False)}
    keep = {}
    for program_name, masks in plan.masks.items():
        if program_name not in session.names:  # activations (an SE gate) are masked too; they hold no weights
            continue
        layer = owner[session.names[program_name]]
        for m in masks:
            if m.dims == 0 and isinstance(layer, (paddle.nn.Conv2D, paddle.nn.BatchNorm2D)):
                keep[id(layer)] = (layer, np.asarray(m.mask, dtype=np.float32))
    for layer, mask in keep.values():
        scale = paddle.to_tensor(mask.reshape(1, -1, 1, 1))
        layer.register_forward_post_hook(lambda lyr, inputs, out, s=scale: out * s)
    return len(keep)


@pytest.mark.parametrize("cfg, registry", [(TINY_PICODET, DET_MODELS), (TINY_LITESEG, SEG_MODELS),
                                           (TINY_ESPNET, SEG_MODELS)], ids=["picodet", "pp_liteseg", "espnet"])
def test_pruned_model_computes_original_with_channels_zeroed(cfg, registry):
    """Every group (through concat inputs, SE gates, depthwise convs, residual adds) removes the same
    channels at its producers and its consumers: the pruned model equals the original whose pruned
    channels are zeroed. A wrong concat offset or a mis-pruned reshape breaks the equality."""
    model, reference = _build(registry, cfg), _build(registry, cfg)
    for layer in model.sublayers():  # non-trivial norm statistics, so a dropped channel is never 0 by accident
        if isinstance(layer, paddle.nn.BatchNorm2D):
            rng = np.random.default_rng(len(layer._mean.name))
            layer._mean.set_value(rng.normal(0, 0.5, layer._mean.shape).astype(np.float32))
            layer.bias.set_value(rng.normal(0, 0.5, layer.bias.shape).astype(np.float32))
    reference.set_state_dict(model.state_dict())
    model.eval(), reference.eval()
    session = PruneSession(model, "l1_norm")
    concat_fed = [m for m in session.groups if m.endswith(("short_conv.conv.weight", "linear.conv.weight",
                                                           "branch1.1.conv.weight"))]
    assert cfg is not TINY_PICODET or len(concat_fed) >= 8, sorted(session.groups)
    plan = session.prune({m: 0.4 for m in session.groups})
    session.commit(plan)
    assert _with_pruned_channels_zeroed(reference, session, plan) >= len(session.groups)
    image = paddle.to_tensor(np.random.default_rng(1).normal(size=(1, 3, 64, 64)).astype(np.float32))
    with paddle.no_grad():
        got, want = model.export_forward(image), reference.export_forward(image)
    got, want = paddle.utils.flatten(got), paddle.utils.flatten(want)
    assert [t.shape for t in got] == [t.shape for t in want]
    assert max(float((a - b).abs().max()) for a, b in zip(got, want)) < 1e-4


def test_picodet_fpgm_skip_patterns_and_finetune_flag():
    model = _build(DET_MODELS, TINY_PICODET)
    before = _shapes(model)
    ctx = _prune(model, ratio=0.5, skip=["neck.*"], finetune=False, criterion="fpgm")
    after = _shapes(model)
    assert all(after[n] == before[n] for n in before if n.startswith("neck."))
    assert after["backbone.stages.0.0.pw.conv.weight"][0] < before["backbone.stages.0.0.pw.conv.weight"][0]
    assert ctx.info["prune"]["skipped"] and not ctx.needs_training


def test_segmentation_pp_liteseg_prunes_with_aux_heads():
    model = _build(SEG_MODELS, TINY_LITESEG)
    before = _shapes(model)
    keys = list(model.state_dict())
    ctx = _prune(model, ratios={"backbone.*": 0.5, "heads.*": 0.25})
    info = ctx.info["prune"]
    assert info["traced"] == "train_logits" and info["flops_after"] < info["flops_before"]
    assert set(info["ratios"].values()) == {0.5, 0.25}
    assert _shapes(model)["heads.1.0.0.weight"][0] == 12 < before["heads.1.0.0.weight"][0]  # auxiliary head
    assert list(model.state_dict()) == keys  # no backup or FLOPs-counter buffers left behind
    image = paddle.to_tensor(np.random.default_rng(1).normal(size=(2, 3, 64, 64)).astype(np.float32))
    model.eval()
    assert list(model({"image": image})["logits"].shape) == [2, 3, 64, 64]
    label = paddle.to_tensor(np.random.default_rng(2).integers(0, 3, (2, 64, 64)).astype(np.int64))
    assert set(_finite_losses(model, {"image": image, "label": label})) == {"loss", "main_loss", "aux_loss"}


def test_nlp_encoder_ffn_pruned_and_bigru_refused():
    model = _build(NLP_MODELS, {"type": "SequenceClassifier", "num_classes": 3, "encoder": TINY_ENCODER})
    ctx = _prune(model, ratio=0.5)
    info = ctx.info["prune"]
    assert info["kind"] == "fc" and info["channels"] == {f"encoder.layers.{i}.ffn.fc1.weight": [64, 32]
                                                         for i in range(2)}
    assert list(model.encoder.layers[0].ffn.fc2.weight.shape) == [32, 32]
    ids = paddle.to_tensor(np.random.default_rng(0).integers(1, 50, (2, 9)).astype(np.int64))
    batch = {"input_ids": ids, "labels": paddle.to_tensor(np.array([0, 2], np.int64))}
    model.eval()
    assert list(model(batch)["logits"].shape) == [2, 3]
    _finite_losses(model, batch)
    tagger = _build(NLP_MODELS, {"type": "TokenClassifier", "num_classes": 5, "use_crf": True,
                                 "encoder": {**TINY_ENCODER, "num_layers": 1}})
    assert _prune(tagger, ratio=0.25).info["prune"]["channels"] == {"encoder.layers.0.ffn.fc1.weight": [64, 48]}
    labels = np.array([[-100] + [1, 2, 0, 3, 4, 0, 1] + [-100], [-100] + [0] * 7 + [-100]], np.int64)
    _finite_losses(tagger, {"input_ids": ids, "labels": paddle.to_tensor(labels)})
    gru = _build(NLP_MODELS, {"type": "BiGRUCRF", "vocab_size": 50, "num_classes": 5, "embed_dim": 16,
                              "hidden_size": 16})
    with pytest.raises(ConfigError, match="recurrent layer .GRU at 'gru'.*no pruning rule for the rnn op"):
        _prune(gru, ratio=0.3)
    with pytest.raises(ConfigError, match="'fpgm' prunes Conv2D filters of float-input models only.*no Conv2D"):
        _prune(_build(NLP_MODELS, {"type": "SequenceClassifier", "encoder": TINY_ENCODER}), ratio=0.3, criterion="fpgm")


@pytest.mark.parametrize("fields, message", [
    ({"ratio": 0.3, "criterion": "l1norm"}, "unknown Prune.criterion 'l1norm'. Did you mean 'l1_norm'?"),
    ({"ratio": 1.2}, r"Prune.ratio must be a number in \(0, 1\)"),
    ({"ratio": 0}, r"Prune.ratio must be a number in \(0, 1\)"),
    ({}, "exactly one of ratio, ratios, flops_reduction; got none"),
    ({"ratio": 0.3, "flops_reduction": 0.3}, "got ratio, flops_reduction"),
    ({"ratios": {"backbone.*": 1.5}}, r"ratios\['backbone.\*'\] must be a number in \(0, 1\)"),
    ({"ratio": 0.3, "skip": "head.*"}, "Prune.skip must be a list"),
    ({"ratio": 0.3, "finetnue": False}, "has no option 'finetnue'. Did you mean 'finetune'?"),
    ({"ratio": 0.3, "channel_multiple": 0}, r"channel_multiple must be a positive int \(8 suits CPUs\), got 0"),
    ({"ratio": 0.3, "channel_multiple": 8.0}, "channel_multiple must be a positive int"),
])
def test_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        STRATEGIES.build({"type": "Prune", **fields})


def test_model_dependent_errors():
    model = _build(SEG_MODELS, TINY_ESPNET)
    with pytest.raises(ConfigError, match="pattern 'decoder.*' matches no prunable group"):
        _prune(model, ratios={"decoder.*": 0.3})
    with pytest.raises(ConfigError, match="skip pattern 'encoder.levle1.\\*' matches no parameter"):
        _prune(model, ratio=0.3, skip=["encoder.levle1.*"])
    with pytest.raises(ConfigError, match="flops_reduction 0.9 is out of reach .*Ask for at most 0"):
        _prune(model, flops_reduction=0.9)
    assert Prune(ratio=0.2).describe()["type"] == "Prune"


def test_sensitivity_table_and_plot(tmp_path):
    model = _build(SEG_MODELS, TINY_ESPNET)
    model.eval()
    image = paddle.to_tensor(np.random.default_rng(3).normal(size=(1, 3, 32, 32)).astype(np.float32))
    with paddle.no_grad():
        reference = model.export_forward(image).argmax(1)
    weights = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    def agreement(m):  # share of pixels whose class matches the unpruned model
        with paddle.no_grad():
            return float((m.export_forward(image).argmax(1) == reference).astype("float32").mean())

    result = sensitivity(model, agreement, ratios=(0.25, 0.5), params=["encoder.*"])
    assert result["baseline"] == 1.0 and result["ratios"] == [0.25, 0.5]
    assert len(result["groups"]) == 5 and all(k.startswith("encoder.") for k in result["groups"])
    values = [m for g in result["groups"].values() for m in g["metrics"]]
    assert all(isinstance(m, float) and 0.0 <= m <= 1.0 and not math.isnan(m) for m in values)
    assert min(values) < 1.0  # pruning moved some predictions
    assert all(np.array_equal(weights[k], v.numpy()) for k, v in model.state_dict().items())  # restored
    paths = write_sensitivity(result, tmp_path / "sens")
    assert json.loads(paths["json"].read_text())["groups"].keys() == result["groups"].keys()
    table = paths["markdown"].read_text()
    assert "| group | channels | ratio 0.25 | ratio 0.5 |" in table
    assert "| `encoder.level2_0.reduce.weight` | 12 |" in table
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["plot"].stat().st_size > 5000
    with pytest.raises(ConfigError, match="matches no prunable group"):
        sensitivity(model, agreement, params=["nope.*"])
