"""Distillation: losses from hooked sublayers, an adapter where channels differ, and a student that
moves towards its teacher."""

import sys
from pathlib import Path

import paddle
import pytest

from kits.core.data import to_tensors
from kits.core.errors import ConfigError
from kits.detection.task import DetectionTask
from kits.slim.base import SlimContext
from kits.slim.distill import Distill, DistillModel

sys.path.insert(0, str(Path(__file__).parent))
from slim_tiny import tiny_detection_cfg  # noqa: E402

PAIRS = [{"student": "head.cls_out.0", "loss": "kl", "temperature": 2.0, "axis": 1},
         {"student": "neck", "teacher": "neck", "loss": "mse", "weight": 0.5},
         {"student": "head.cls_out.1", "loss": "bce"}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    paddle.seed(0)
    cfg = tiny_detection_cfg(tmp_path_factory.mktemp("distill"))
    task = DetectionTask()
    student = task.build_model(cfg)
    teacher_cfg = {**cfg["model"], "neck": {"type": "CSPPAN", "out_channels": 48},
                   "head": {**cfg["model"]["head"], "in_channels": 48, "feat_channels": 48}}
    teacher = task.models.build(teacher_cfg)
    dataset = task.build_dataset(cfg, "train")
    batch = to_tensors(task.collate_for(dataset)([dataset[i] for i in range(2)]))
    return cfg, task, student, teacher, batch


def test_adapter_bridges_channel_counts(setup):
    _, _, student, teacher, _ = setup
    model = DistillModel(student, teacher, Distill(pairs=PAIRS).pairs)
    assert len(model.adapters[0]) == 0                                # kl: no adapter
    assert len(model.adapters[1]) == 4                                # mse: one per neck level
    assert all(isinstance(a, paddle.nn.Conv2D) and a.weight.shape[:2] == [48, 32] for a in model.adapters[1])
    assert not any(p.name in {q.name for q in teacher.parameters()} for p in model.parameters())
    model.release()


def test_student_moves_towards_the_teacher(setup):
    _, _, student, teacher, batch = setup
    model = DistillModel(student, teacher, Distill(pairs=PAIRS).pairs)
    model.train()
    opt = paddle.optimizer.Adam(learning_rate=5e-3, parameters=model.parameters())
    first = None
    for _ in range(12):
        losses = model(batch)
        assert float(losses["loss"]) > sum(float(losses[f"distill_{i}"]) for i in range(3))  # task loss kept
        sum(v for k, v in losses.items() if k.startswith("distill")).backward()  # only the teacher's pull
        opt.step()
        opt.clear_grad()
        first = first if first is not None else dict(model.last_losses)
    assert set(first) == {"distill_0", "distill_1", "distill_2"}
    assert model.last_losses["distill_2"] < first["distill_2"]
    assert model.last_losses["distill_1"] < 0.7 * first["distill_1"]
    assert model.last_losses["distill_0"] < first["distill_0"]
    model.eval()
    assert set(model(batch)) == {"cls_scores", "reg_dists"}           # eval mode: the plain student
    released = model.release()
    assert released is student


def test_strategy_uses_the_uncompressed_model_as_default_teacher(setup, tmp_path):
    cfg, task, student, teacher, _ = setup
    ctx = SlimContext(cfg=cfg, task=task, model=student, out_dir=tmp_path, baseline=teacher)
    step = Distill(pairs=[{"student": "head.cls_out.0", "loss": "kl"}])
    step.apply(ctx)
    assert ctx.needs_training and isinstance(ctx.model, DistillModel)
    assert ctx.model._teacher is teacher
    step.after_training(ctx)
    assert ctx.model is student and "distill" in ctx.info


def test_unknown_sublayer_is_named(setup):
    _, _, student, teacher, _ = setup
    with pytest.raises(ConfigError, match="no sublayer 'hed'"):
        DistillModel(student, teacher, Distill(pairs=[{"student": "hed", "loss": "kl"}]).pairs)


def test_levels_of_different_widths_get_their_own_adapters(setup):
    import copy

    from kits.slim.base import STRATEGIES

    _, _, student, teacher, batch = setup
    pruned = copy.deepcopy(student)
    ctx = SlimContext(cfg=None, task=None, model=pruned, out_dir=None)
    STRATEGIES.build({"type": "Prune", "ratios": {"neck.bottom_up.1.final_conv.*": 0.25, "neck.*": 0.5}}).apply(ctx)
    model = DistillModel(pruned, teacher, Distill(pairs=PAIRS).pairs)
    widths = [a.weight.shape[1] for a in model.adapters[1]]
    assert len(set(widths)) > 1 and all(a.weight.shape[0] == 48 for a in model.adapters[1])
    model.train()
    losses = model(batch)
    assert float(losses["distill_1"]) > 0
    model.release()
