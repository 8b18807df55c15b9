import numpy as np
import pytest

from kits.detection.data.records import Record
from kits.detection.metrics import coco_evaluate, coco_ground_truth, voc_ap, voc_class_aps, voc_evaluate


def records():
    return [Record(image=f"{i}.jpg", boxes=np.array([[10, 10, 60, 60], [100, 100, 150, 180]], np.float32),
                   classes=np.array([0, 1]), difficult=np.array([False, False]), width=200, height=200)
            for i in range(3)]


def perfect(recs):
    return {i: np.array([[c, 0.9, *b] for b, c in zip(r.boxes, r.classes)], np.float32) for i, r in enumerate(recs)}


def test_perfect_detections_score_one():
    recs = records()
    metrics = coco_evaluate(coco_ground_truth(recs, ["a", "b"]), perfect(recs))
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["AP50/b"] == pytest.approx(1.0)
    assert voc_evaluate(recs, perfect(recs), 2) == pytest.approx(1.0)


def test_missing_half_of_class_b():
    recs = records()
    dets = perfect(recs)
    dets[0] = dets[0][:1]  # image 0 loses its class-1 box: recall 2/3 for class 1
    assert voc_evaluate(recs, dets, 2) == pytest.approx((1.0 + 2 / 3) / 2)
    assert voc_class_aps(recs, dets, 3) == pytest.approx({0: 1.0, 1: 2 / 3})  # class 2 has no ground truth
    metrics = coco_evaluate(coco_ground_truth(recs, ["a", "b"]), dets)
    assert metrics["AP50/a"] == pytest.approx(1.0)
    assert 0.6 < metrics["AP50/b"] < 0.7


def test_voc_ap_variants():
    recall = np.array([0.5, 1.0])
    precision = np.array([1.0, 0.5])
    assert voc_ap(recall, precision, eleven_point=False) == pytest.approx(0.75)
    assert voc_ap(recall, precision, eleven_point=True) == pytest.approx((6 * 1.0 + 5 * 0.5) / 11)


def test_an_evaluated_subset_is_scored_against_its_own_ground_truth():
    from kits.detection.metrics import DetectionMetric

    class Data:  # what DetectionMetric reads of a dataset
        records, class_names = records(), ["a", "b"]

    metric = DetectionMetric(Data())
    metric.detections = {i: d for i, d in perfect(Data.records).items() if i < 2}  # image 2 not evaluated
    got = metric.compute()
    assert got["mAP"] == pytest.approx(1.0) and got["VOC_mAP50"] == pytest.approx(1.0)
    metric.detections[2] = np.zeros((0, 6), np.float32)  # evaluated, nothing found: its boxes are missed
    assert metric.compute()["VOC_mAP50"] == pytest.approx(2 / 3)
