import logging

import numpy as np
import paddle
import pytest
from tiny import TinyNet

from kits.core import pretrained as pt
from kits.core.errors import CheckpointError
from kits.core.fileio import sha256sum


@pytest.fixture
def saved(tmp_path):
    paddle.seed(0)
    net = TinyNet(num_classes=3)
    path = pt.save_state(net.state_dict(), tmp_path / "tiny.safetensors", metadata={"source": "test"})
    return net, path


def test_round_trip_and_strict(saved):
    net, path = saved
    other = TinyNet(num_classes=3)
    report = pt.load_into(other, path, strict=True)
    assert not (report.missing or report.unexpected or report.mismatched)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), other.state_dict()[key].numpy())


def test_class_count_change_skips_only_the_head(saved):
    _, path = saved
    report = pt.load_into(TinyNet(num_classes=5), path)
    assert sorted(n for n, _, _ in report.mismatched) == ["fc2.bias", "fc2.weight"]
    assert "fc1.weight" in report.loaded and not report.missing
    assert "skipped 2 with another shape" in report.summary()
    with pytest.raises(CheckpointError, match="do not match the model exactly"):
        pt.load_into(TinyNet(num_classes=5), path, strict=True)


def test_registered_weights_are_sha256_checked(saved, tmp_path, monkeypatch):
    _, path = saved
    monkeypatch.setattr(pt, "PACKAGE_ROOT", tmp_path)
    spec = pt.WeightSpec(name="tiny_test_w", file="tiny.safetensors", sha256=sha256sum(path),
                         source="unit test", license="Apache-2.0")
    monkeypatch.setitem(pt._WEIGHTS, spec.name, spec)
    assert pt.resolve("tiny_test_w") == path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 mismatch for weights 'tiny_test_w'"):
        pt.resolve("tiny_test_w")


def test_derived_weights_built_once_into_cache(saved, tmp_path, monkeypatch):
    _, path = saved
    calls = []

    def make(target):
        calls.append(target)
        target.write_bytes(path.read_bytes())

    monkeypatch.setenv("KITS_HOME", str(tmp_path / "cache"))
    spec = pt.WeightSpec(name="tiny_made", file="made/tiny.safetensors", sha256=sha256sum(path),
                         source="unit test", license="MIT", make=make)
    monkeypatch.setitem(pt._WEIGHTS, spec.name, spec)
    first = pt.resolve("tiny_made")
    assert first == tmp_path / "cache/made/tiny.safetensors" and pt.resolve("tiny_made") == first
    assert len(calls) == 1


def test_unknown_name_and_missing_file():
    with pytest.raises(CheckpointError, match="no pretrained weights named 'nope'"):
        pt.resolve("nope")
    with pytest.raises(CheckpointError, match="weight file not found"):
        pt.resolve("/no/such/file.safetensors")


def test_npz_and_logged_pickle(saved, tmp_path, caplog):
    net, _ = saved
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in net.state_dict().items()})
    assert pt.load_into(TinyNet(), tmp_path / "w.npz", strict=True).loaded
    paddle.save(net.state_dict(), str(tmp_path / "w.pdparams"))
    with caplog.at_level(logging.WARNING):
        pt.load_into(TinyNet(), tmp_path / "w.pdparams", strict=True)
    assert "unpickles the file" in caplog.text


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        pt.load_state(bad)


def _body(width: int, classes: int = 4) -> paddle.nn.Sequential:
    nn = paddle.nn
    return nn.Sequential(nn.Conv2D(3, width, 3, padding=1), nn.BatchNorm2D(width),
                         nn.Conv2D(width, width, 3, padding=1, groups=width), nn.Conv2D(width, classes, 1))


def _randomized(model) -> dict:
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(v.shape).astype("float32") + (2.0 if k.endswith("_variance") else 0.0)
            for k, v in model.state_dict().items()}


def test_pruned_weights_narrow_the_configured_model(tmp_path):
    paddle.seed(0)
    pruned = _body(5)
    state = _randomized(pruned)
    pruned.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    pt.save_state(state, tmp_path / "pruned.safetensors", metadata={pt.PRUNED_KEY: "true"})
    model = _body(8)  # what the config builds
    pt.load_into(model, tmp_path / "pruned.safetensors", strict=True)
    assert model[2]._groups == 5 and model[1]._num_features == 5 and model[3]._in_channels == 5
    x = paddle.randn([1, 3, 6, 6])
    pruned.eval(), model.eval()
    np.testing.assert_allclose(model(x).numpy(), pruned(x).numpy(), rtol=1e-5, atol=1e-5)
    # without the mark the same file is an ordinary mismatch
    pt.save_state(state, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="do not match the model exactly"):
        pt.load_into(_body(8), tmp_path / "plain.safetensors", strict=True)


def test_pruned_weights_need_the_config_they_were_pruned_from(tmp_path):
    state = _randomized(_body(5, classes=6))
    pt.save_state(state, tmp_path / "pruned.safetensors", metadata={pt.PRUNED_KEY: "true"})
    for strict in (True, False):  # fine-tuning to another class count included: the head could not follow
        model = _body(8)
        with pytest.raises(CheckpointError, match=r"3.weight: the pruned checkpoint's shape \(6, 5, 1, 1\)"):
            pt.load_into(model, tmp_path / "pruned.safetensors", strict=strict)
        assert tuple(model[0].weight.shape) == (8, 3, 3, 3)  # left as built
