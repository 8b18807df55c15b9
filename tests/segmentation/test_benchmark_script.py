"""The pure helpers of benchmarks/segmentation.py: sizes, OHEM's min_kept, the efficiency and ratio
arithmetic, the shortened val list, the benchmark config and CamVid training batches."""

from pathlib import Path

import numpy as np
import pytest

from benchmarks import segmentation as bench


def test_sizes_are_width_by_height():
    assert bench.parse_wh("480x360") == (360, 480)
    assert bench.parse_wh("512X512") == (512, 512)
    for bad in ("480", "480x", "0x360", "ax360"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            bench.parse_wh(bad)


def test_ohem_keeps_a_sixteenth_of_the_batch_pixels():
    assert bench.ohem_min_kept(4, 360, 480) == 43200


def test_efficiency_is_two_flops_per_mac_over_latency():
    row = bench.efficiency(macs=500_000_000, p50_ms=10.0, peak_gflops=200.0)
    assert row == {"gflop": 1.0, "achieved_gflops": 100.0, "share_of_peak": 0.5}
    assert bench.efficiency(500_000_000, None, 200.0) == {"gflop": 1.0, "achieved_gflops": None,
                                                          "share_of_peak": None}
    assert bench.efficiency(None, 10.0, 200.0)["gflop"] is None


def test_ratios_and_round_medians():
    assert bench.ratio(3.0, 2.0) == 1.5
    assert bench.ratio(None, 2.0) is None and bench.ratio(1.0, 0.0) is None
    out = bench.rounds_summary([2.0, 4.0, 3.0], [1.0, 2.0, 2.0])
    assert out["kit_images_per_s"] == 3.0 and out["baseline_images_per_s"] == 2.0
    assert out["train_ratio"] == 1.5 and out["train_ratio_per_round"] == [2.0, 2.0, 1.5]


def test_first_lines_keeps_the_first_entries(tmp_path):
    src = tmp_path / "val_list.txt"
    src.write_text("a.jpg a.png\n\nb.jpg b.png\nc.jpg c.png\n")
    out = bench.first_lines(src, 2, tmp_path)
    assert out.read_text().splitlines() == ["a.jpg a.png", "b.jpg b.png"]


def test_config_matches_paddleseg_pp_liteseg_stdc1():
    cfg = bench.liteseg_config(Path("/data"), (360, 480), 4, "ohem")
    model = cfg["model"]
    assert model["backbone"] == {"type": "STDCNet", "variant": "STDC1"}
    assert model["arm_channels"] == [32, 64, 128] and model["head_channels"] == [32, 64, 64]
    assert model["aux_weights"] == [1.0, 1.0]  # three heads, each with its loss, as PaddleSeg trains it
    assert model["loss"]["min_kept"] == 43200
    assert bench.liteseg_config(Path("/data"), (360, 480), 4, "ce")["model"]["loss"]["type"] == "CrossEntropyLoss"
    assert cfg["export"] == {"input_size": [bench.HEIGHT, bench.WIDTH]}


@pytest.mark.parametrize("crop", [(360, 480), (512, 512)])
def test_train_batches_from_camvid(shared_dir, crop):
    from kits.core.config import Config
    from kits.segmentation import task_for

    root = shared_dir / "datasets" / "camvid"
    if not root.is_dir():
        pytest.skip(f"needs {root}")
    cfg = Config(bench.liteseg_config(root, crop, 2, "ce"), path="<test>")
    batches = bench.train_batches(task_for(cfg), cfg, steps=1, batch=2)
    assert len(batches) == 1 and set(batches[0]) == {"image", "label"}
    image, label = batches[0]["image"], batches[0]["label"]
    assert image.shape == (2, 3, *crop) and image.dtype == np.float32
    assert label.shape == (2, *crop) and label.dtype == np.int64
    assert set(np.unique(label)) <= set(range(bench.NUM_CLASSES)) | {bench.IGNORE}
    assert -1.01 <= image.min() and image.max() <= 1.01  # (x - 127.5) / 127.5
