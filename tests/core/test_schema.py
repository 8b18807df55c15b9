import pytest
from tiny import TinyTask, tiny_config

from kits.core.config import Config
from kits.core.errors import ConfigError
from kits.core.schema import validate_trainer


def cfg_with(tmp_path, **changes):
    data = tiny_config(tmp_path)
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return Config(data, path="exp.yml", origins={"trainer": "base/runtime.yml"})


def test_valid_config_passes(tmp_path):
    cfg = cfg_with(tmp_path)
    TinyTask().validate(cfg)
    tc = validate_trainer(cfg)
    assert tc.epochs == 2 and tc.iters is None and tc.device == "auto"


def test_unknown_trainer_key_names_file_path_and_suggestion(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate_trainer(cfg_with(tmp_path, trainer__epohcs=3))
    text = str(err.value)
    assert text.startswith("base/runtime.yml: unknown key 'trainer.epohcs'")
    assert "Did you mean 'epochs'?" in text


def test_unknown_model_key_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'model.hiden' for TinyNet. Did you mean 'hidden'"):
        TinyTask().validate(cfg_with(tmp_path, model__hiden=4))


def test_unknown_type_and_section(tmp_path):
    with pytest.raises(ConfigError, match="unknown type 'TinyNt'.*Did you mean 'TinyNet'"):
        TinyTask().validate(cfg_with(tmp_path, model__type="TinyNt"))
    with pytest.raises(ConfigError, match="unknown top-level key 'optimiser'. Did you mean 'optimizer'"):
        TinyTask().validate(cfg_with(tmp_path, optimiser={"type": "SGD"}))
    with pytest.raises(ConfigError, match="unknown key 'optimizer.momentun'"):
        TinyTask().validate(cfg_with(tmp_path, optimizer__momentun=0.9))


def test_wrong_types_and_ranges(tmp_path):
    with pytest.raises(ConfigError, match="'trainer.batch_size' must be int, got '8'"):
        validate_trainer(cfg_with(tmp_path, trainer__batch_size="8"))
    with pytest.raises(ConfigError, match="'trainer.device' must be one of auto, cpu, gpu"):
        validate_trainer(cfg_with(tmp_path, trainer__device="cuda"))
    with pytest.raises(ConfigError, match="exactly one of 'trainer.epochs' or 'trainer.iters'"):
        validate_trainer(cfg_with(tmp_path, trainer__iters=5))
    with pytest.raises(ConfigError, match="'trainer.grad_accum' must be >= 1"):
        validate_trainer(cfg_with(tmp_path, trainer__grad_accum=0))
    assert validate_trainer(cfg_with(tmp_path, trainer__ema_decay=1)).ema_decay == 1.0


def test_missing_required(tmp_path):
    cfg = cfg_with(tmp_path)
    del cfg["optimizer"]["lr"]
    with pytest.raises(ConfigError, match="'optimizer' \\(AdamW\\) is missing required key 'lr'"):
        TinyTask().validate(cfg)
    cfg = cfg_with(tmp_path)
    del cfg["model"]
    with pytest.raises(ConfigError, match="missing required section 'model'"):
        TinyTask().validate(cfg)


def test_class_count_mismatch(tmp_path):
    cfg = cfg_with(tmp_path, model__num_classes=3, val_dataset__num_classes=5)
    with pytest.raises(ConfigError, match="val_dataset.num_classes=5 but model.num_classes=3"):
        TinyTask().validate(cfg)


def test_lists_of_components_are_checked(tmp_path):
    from kits.core import Registry
    from kits.core.schema import check_component

    reg = Registry("t")

    @reg.register
    class Outer:
        def __init__(self, steps=()):
            pass

    @reg.register
    class Flip:
        def __init__(self, prob=0.5):
            pass

    cfg = Config({"model": {"type": "Outer", "steps": [{"type": "Flip", "prob": 1.0}, {"type": "Flp"}]}}, path="x.yml")
    with pytest.raises(ConfigError, match=r"unknown type 'Flp' in 'model.steps\[1\]'. Did you mean 'Flip'"):
        check_component(cfg, "model", [reg])
    cfg["model"]["steps"] = [{"type": "Flip", "prb": 1.0}]
    with pytest.raises(ConfigError, match=r"unknown key 'model.steps\[0\].prb' for Flip"):
        check_component(cfg, "model", [reg])
