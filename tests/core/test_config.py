import pytest

from kits.core.config import Config, load_config, parse_override
from kits.core.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_chain_merges_deeply_in_order(tmp_path):
    write(tmp_path / "_base_/runtime.yml", "trainer: {epochs: 10, batch_size: 8, seed: 1}\nmodel: {type: A, depth: 3, width: 4}\n")
    write(tmp_path / "_base_/sched.yml", "_base_: runtime.yml\ntrainer: {epochs: 20}\n")
    write(tmp_path / "_base_/data.yml", "train_dataset: {type: D, root: /data}\n")
    leaf = write(tmp_path / "exp/leaf.yml", "_base_: [../_base_/sched.yml, ../_base_/data.yml]\nmodel: {width: 8}\n")
    cfg = load_config(leaf)
    assert cfg["trainer"] == {"epochs": 20, "batch_size": 8, "seed": 1}
    assert cfg["model"] == {"type": "A", "depth": 3, "width": 8}
    assert cfg["train_dataset"]["root"] == "/data"
    assert cfg.origin("trainer.epochs").endswith("sched.yml")
    assert cfg.origin("trainer.seed").endswith("runtime.yml")
    assert cfg.origin("model.width").endswith("leaf.yml")


def test_replace_drops_inherited_keys(tmp_path):
    write(tmp_path / "base.yml", "model: {type: A, depth: 3, width: 4}\n")
    leaf = write(tmp_path / "leaf.yml", "_base_: base.yml\nmodel: {_replace_: true, type: B}\n")
    assert load_config(leaf)["model"] == {"type": "B"}


def test_overrides_parse_yaml_literals(tmp_path):
    leaf = write(tmp_path / "a.yml", "trainer: {epochs: 1}\n")
    cfg = load_config(leaf, ["trainer.epochs=5", "optimizer.lr=1e-3", "model.sizes=[1, 2]",
                             "trainer.amp=true", "pretrained=null", "val_dataset.root=data/x y"])
    assert cfg["trainer"]["epochs"] == 5
    assert cfg["optimizer"]["lr"] == pytest.approx(1e-3)
    assert cfg["model"]["sizes"] == [1, 2]
    assert cfg["trainer"]["amp"] is True and cfg["pretrained"] is None
    assert cfg["val_dataset"]["root"] == "data/x y"
    assert cfg.origin("trainer.epochs") == "-o trainer.epochs=5"


@pytest.mark.parametrize("bad", ["trainer.epochs", "=3", "a..b=1", "trainer.epochs=[1,"])
def test_bad_override_syntax(bad):
    with pytest.raises(ConfigError, match="bad override"):
        parse_override(bad)


def test_override_into_scalar_is_an_error(tmp_path):
    leaf = write(tmp_path / "a.yml", "pretrained: foo\n")
    with pytest.raises(ConfigError, match="'pretrained' is a str, not a section"):
        load_config(leaf, ["pretrained.x=1"])


def test_override_into_list_items(tmp_path):
    leaf = write(tmp_path / "a.yml", "strategies:\n  - {type: Prune, ratio: 0.3}\n  - {type: QAT}\nsizes: [1, 2]\n")
    cfg = load_config(leaf, ["strategies.0.ratio=0.4", "strategies.1.epochs=2", "sizes.1=5"])
    assert cfg["strategies"] == [{"type": "Prune", "ratio": 0.4}, {"type": "QAT", "epochs": 2}]
    assert cfg["sizes"] == [1, 5] and cfg.origin("strategies.0.ratio") == "-o strategies.0.ratio=0.4"
    with pytest.raises(ConfigError, match=r"'strategies' is a list of 2 items; pick one by its index 0..1, got '2'"):
        load_config(leaf, ["strategies.2.ratio=0.4"])
    with pytest.raises(ConfigError, match="'strategies' is a list of 2 items.*got 'prune'"):
        load_config(leaf, ["strategies.prune.ratio=0.4"])
    with pytest.raises(ConfigError, match="'sizes.0' is a int, not a section"):
        load_config(leaf, ["sizes.0.x=1"])


def test_missing_file_and_missing_base(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yml")
    leaf = write(tmp_path / "a.yml", "_base_: gone.yml\n")
    with pytest.raises(ConfigError, match="_base_ file not found: gone.yml"):
        load_config(leaf)


def test_bad_yaml_reports_line(tmp_path):
    leaf = write(tmp_path / "a.yml", "trainer:\n  epochs: 3\n  batch_size: [8\nmodel: {}\n")
    with pytest.raises(ConfigError, match=r"a\.yml: invalid YAML at line \d+"):
        load_config(leaf)


def test_yaml_tags_are_refused(tmp_path):
    leaf = write(tmp_path / "a.yml", "model: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(leaf)


def test_inheritance_loop(tmp_path):
    write(tmp_path / "a.yml", "_base_: b.yml\n")
    write(tmp_path / "b.yml", "_base_: a.yml\n")
    with pytest.raises(ConfigError, match="inheritance loop"):
        load_config(tmp_path / "a.yml")


def test_to_yaml_round_trip(tmp_path):
    cfg = Config({"model": {"type": "A", "sizes": (1, 2)}}, path="x")
    assert "sizes:\n  - 1" in cfg.to_yaml() or "sizes:\n- 1" in cfg.to_yaml()
