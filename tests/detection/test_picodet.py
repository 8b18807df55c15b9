"""PicoDet: parity of the bundled COCO weights with the upstream ONNX export, training, loading, decoding."""

from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from kits.detection.models import PicoDet, multiclass_nms, postprocess  # noqa: E402
from kits.detection.pretrained import coco_names  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)


def _tiny_model(num_classes=3, **kw):
    return PicoDet(backbone={"type": "ESNet", "scale": 0.25}, neck={"type": "CSPPAN", "out_channels": 32},
                   head={"type": "PicoHead", "num_classes": num_classes, "in_channels": 32, "feat_channels": 32,
                         "num_convs": 1}, input_size=128, **kw)


def _load_image(path, size):
    cv2 = pytest.importorskip("cv2")
    img = cv2.imread(str(path))
    resized = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    return ((resized - MEAN) / STD).transpose(2, 0, 1)[None], img.shape[:2]


def test_parity_with_onnx_export():
    onnx_path = SHARED / "weights" / "coco_det" / "picodet_s_416_coco.onnx"
    images = [SHARED / "datasets" / "roadsign_voc" / "JPEGImages" / n for n in ("road1.jpg", "road10.jpg")]
    if not onnx_path.is_file() or not all(p.is_file() for p in images):
        pytest.skip(f"needs the shared ONNX weights and roadsign images beside the repository ({SHARED})")
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    model = PicoDet(input_size=416, pretrained="picodet_s_416_coco")
    model.eval()
    assert len(coco_names()) == 80 and coco_names()[11] == "stop sign"
    for path in images:
        x, orig = _load_image(path, 416)
        ref = session.run(None, {"image": x})
        with paddle.no_grad():
            ours = [t.numpy() for t in model.export_forward(paddle.to_tensor(x))]
        assert [o.shape for o in ours] == [r.shape for r in ref]
        assert max(float(np.abs(a - b).max()) for a, b in zip(ours, ref)) <= 1e-4
        with paddle.no_grad():
            raw = model({"image": paddle.to_tensor(x)})
        assert np.allclose(raw["cls_scores"][0].numpy(), ours[0]) and np.allclose(raw["reg_dists"][3].numpy(), ours[7])
        dets_ref = postprocess(ref[:4], ref[4:], 416, [orig])[0]
        dets = postprocess(ours[:4], ours[4:], 416, [orig])[0]
        assert len(dets) == len(dets_ref) > 0
        np.testing.assert_array_equal(dets[:, 0], dets_ref[:, 0])
        np.testing.assert_allclose(dets[:, 1:], dets_ref[:, 1:], atol=1e-2)
        assert dets[0, 0] == 9 and dets[0, 1] > 0.5  # a confident traffic light on both images


def _synthetic_batch():
    rng = np.random.default_rng(0)
    boxes = np.array([[[10, 20, 60, 90], [70, 70, 120, 110]], [[30, 30, 100, 100], [0, 0, 0, 0]]], np.float32)
    return {"image": paddle.to_tensor(rng.normal(size=(2, 3, 128, 128)).astype(np.float32)),
            "gt_bbox": paddle.to_tensor(boxes),
            "gt_class": paddle.to_tensor(np.array([[0, 2], [1, 0]], np.int32)),
            "pad_gt_mask": paddle.to_tensor(np.array([[1, 1], [1, 0]], np.float32))}


def test_tiny_model_trains():
    paddle.seed(0)
    model = _tiny_model()
    model.train()
    batch = _synthetic_batch()
    optimizer = paddle.optimizer.Adam(learning_rate=5e-3, parameters=model.parameters())
    history = []
    for _ in range(20):
        losses = model(batch)
        assert set(losses) == {"loss", "loss_vfl", "loss_bbox", "loss_dfl"}
        assert all(np.isfinite(float(v)) and v.ndim == 0 for v in losses.values())
        history.append(float(losses["loss"]))
        losses["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()
    assert history[-1] < 0.7 * history[0], history
    model.eval()
    with paddle.no_grad():
        out = model({"image": batch["image"]})
    assert [tuple(t.shape) for t in out["cls_scores"]] == [(2, 256, 3), (2, 64, 3), (2, 16, 3), (2, 4, 3)]
    assert tuple(out["reg_dists"][0].shape) == (2, 256, 32)


def test_empty_targets_give_finite_losses():
    model = _tiny_model()
    model.train()
    batch = dict(_synthetic_batch(), pad_gt_mask=paddle.zeros([2, 2]))
    losses = model(batch)
    assert np.isfinite(float(losses["loss"])) and float(losses["loss_bbox"]) == 0.0


def test_pretrained_into_other_class_count_skips_only_class_layers():
    model = PicoDet(head={"type": "PicoHead", "num_classes": 4}, pretrained="picodet_s_416_coco")
    report = model.load_report
    skipped = sorted(name for name, _, _ in report.mismatched)
    assert skipped == sorted(f"head.cls_out.{i}.{p}" for i in range(4) for p in ("weight", "bias"))
    assert not report.missing and not report.unexpected
    assert len(report.loaded) == len(model.state_dict()) - 8
    assert tuple(model.head.cls_out[0].weight.shape) == (4, 96, 1, 1)
    # loaded BatchNorms use running statistics in train mode too (fine-tuning with small batches)
    assert model.head.towers[0][0].dw.bn._use_global_stats is True


def test_postprocess_decodes_hand_made_distribution():
    # one level, stride 8, input 16x16 -> 2x2 cells; the cell (1, 1) has its centre at (12, 12).
    reg = np.full((1, 4, 4, 8), -30.0, np.float32)
    reg[0, 3, 0, 1] = reg[0, 3, 1, 1] = 30.0  # left 1 bin, top 1 bin -> 8 px
    reg[0, 3, 2, 0] = reg[0, 3, 2, 1] = 30.0  # right: half in bin 0, half in bin 1 -> 0.5 bin = 4 px
    reg[0, 3, 3, 0] = 30.0  # bottom 0 px
    scores = np.zeros((1, 4, 5), np.float32)
    scores[0, 3, 2] = 0.9
    dets = postprocess([scores], [reg.reshape(1, 4, 32)], 16, [(32, 48)], strides=(8,))
    # input box (4, 4, 16, 12) scaled by (48 / 16, 32 / 16) = (3, 2)
    np.testing.assert_allclose(dets[0], [[2, 0.9, 12, 8, 48, 24]], atol=1e-4)
    # ratio-kept resize of a 32x64 (HxW) image by 0.25 into the 16x16 input, padded below:
    # boxes map back through the scale factor, then are clipped to the original image
    dets = postprocess([scores], [reg.reshape(1, 4, 32)], 16, [(32, 64)], scale_factors=[(0.25, 0.25)],
                       strides=(8,))
    np.testing.assert_allclose(dets[0], [[2, 0.9, 16, 16, 64, 32]], atol=1e-4)


def test_multiclass_nms_is_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.zeros((4, 2), np.float32)
    scores[0, 0], scores[1, 0], scores[2, 1], scores[3, 0] = 0.9, 0.8, 0.7, 0.01
    dets = multiclass_nms(boxes, scores, score_threshold=0.05, iou_threshold=0.5)
    np.testing.assert_allclose(dets[:, :2], [[0, 0.9], [1, 0.7]])
    assert len(multiclass_nms(boxes, scores, score_threshold=0.05, iou_threshold=0.5, keep_top_k=1)) == 1
