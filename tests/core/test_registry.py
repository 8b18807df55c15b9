import pytest

from kits.core import ConfigError, Registry


def make():
    reg = Registry("backbone")

    @reg.register
    class ResNet:
        def __init__(self, depth=18, width=64):
            self.depth, self.width = depth, width

    @reg.register(name="MobileNetV3")
    def mobilenet(scale=1.0):
        return ("mbv3", scale)

    return reg


def test_build_from_type():
    reg = make()
    obj = reg.build({"type": "ResNet", "depth": 50})
    assert (obj.depth, obj.width) == (50, 64)
    assert reg.build({"type": "MobileNetV3"}, scale=0.5) == ("mbv3", 0.5)
    assert reg.names() == ["MobileNetV3", "ResNet"]


def test_miss_lists_valid_names_and_closest():
    with pytest.raises(ConfigError) as err:
        make().build({"type": "Resnet"})
    assert "Did you mean 'ResNet'?" in str(err.value)
    assert "MobileNetV3, ResNet" in str(err.value)


def test_unknown_option_suggests():
    with pytest.raises(ConfigError, match="has no option 'dept'. Did you mean 'depth'"):
        make().build({"type": "ResNet", "dept": 3})


def test_missing_type_and_duplicates():
    reg = make()
    with pytest.raises(ConfigError, match="needs a 'type' key"):
        reg.build({"depth": 3})
    with pytest.raises(KeyError):
        reg.register(lambda: None, name="ResNet")
