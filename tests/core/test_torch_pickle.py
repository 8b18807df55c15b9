"""The torch-free checkpoint reader: legacy and zip layouts, views, dtypes, and refusal of foreign globals.

Checkpoint files are written here opcode by opcode (no torch needed), in the layouts torch uses.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kits.core.errors import CheckpointError
from kits.core.torch_pickle import LEGACY_MAGIC, load_torch_pickle

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


class G:
    """A global reference (module.name)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class Call:
    def __init__(self, func: G, args: tuple):
        self.func, self.args = func, args


class PersId:
    def __init__(self, pid: tuple):
        self.pid = pid


def _emit(obj, out: bytearray) -> None:
    if isinstance(obj, G):
        out += b"c" + f"{obj.module}\n{obj.name}\n".encode()
    elif isinstance(obj, Call):
        _emit(obj.func, out)
        _emit(obj.args, out)
        out += pickle.REDUCE
    elif isinstance(obj, PersId):
        _emit(obj.pid, out)
        out += pickle.BINPERSID
    elif isinstance(obj, tuple):
        out += pickle.MARK
        for item in obj:
            _emit(item, out)
        out += pickle.TUPLE
    elif isinstance(obj, list):
        out += pickle.EMPTY_LIST + pickle.MARK
        for item in obj:
            _emit(item, out)
        out += pickle.APPENDS
    elif isinstance(obj, dict):
        out += pickle.EMPTY_DICT + pickle.MARK
        for key, value in obj.items():
            _emit(key, out)
            _emit(value, out)
        out += pickle.SETITEMS
    else:  # str, int, float, bool, None: the stdlib encoding without PROTO/STOP
        out += pickle.dumps(obj, protocol=2)[2:-1]


def dumps(obj) -> bytes:
    out = bytearray(pickle.PROTO + b"\x02")
    _emit(obj, out)
    return bytes(out + pickle.STOP)


def tensor(key: str, storage: str, numel: int, offset: int, shape: tuple, stride: tuple, legacy: bool):
    pid = ("storage", G("torch", storage), key, "cpu", numel) + ((None,) if legacy else ())
    hooks = Call(G("collections", "OrderedDict"), ())
    return Call(G("torch._utils", "_rebuild_tensor_v2"), (PersId(pid), offset, shape, stride, False, hooks))


def write_legacy(path: Path, obj, storages: dict[str, np.ndarray]) -> Path:
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4, "long": 8}}
    blob = dumps(LEGACY_MAGIC) + dumps(1001) + dumps(info) + dumps(obj) + dumps(list(storages))
    for arr in storages.values():
        blob += struct.pack("<q", arr.size) + arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    path.write_bytes(blob)
    return path


def write_zip(path: Path, obj, storages: dict[str, np.ndarray]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ck/data.pkl", dumps(obj))
        archive.writestr("ck/byteorder", "little")
        archive.writestr("ck/version", "3\n")
        for key, arr in storages.items():
            archive.writestr(f"ck/data/{key}", arr.tobytes())
    return path


def _sample(legacy: bool):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    ints = np.array([3, -1, 7], dtype=np.int64)
    obj = {
        "w": tensor("0", "FloatStorage", 24, 0, (4, 6), (6, 1), legacy),
        "w_t": tensor("0", "FloatStorage", 24, 0, (6, 4), (1, 6), legacy),  # a transposed view
        "w_slice": tensor("0", "FloatStorage", 24, 8, (2, 3), (6, 1), legacy),
        "idx": tensor("1", "LongStorage", 3, 0, (3,), (1,), legacy),
        "scalar": tensor("1", "LongStorage", 3, 2, (), (), legacy),
    }
    expect = {"w": base, "w_t": base.T, "w_slice": base[1:3, 2:5], "idx": ints, "scalar": np.array(7)}
    return obj, {"0": base.ravel(), "1": ints}, expect


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_reads_tensors_views_and_dtypes(tmp_path, legacy):
    obj, storages, expect = _sample(legacy)
    path = (write_legacy if legacy else write_zip)(tmp_path / "ck.pth", obj, storages)
    state = load_torch_pickle(path)
    assert sorted(state) == sorted(expect)
    for key, value in expect.items():
        assert state[key].dtype == value.dtype and state[key].shape == value.shape, key
        np.testing.assert_array_equal(state[key], value)
        assert state[key].flags["C_CONTIGUOUS"] and state[key].flags["OWNDATA"]


def test_unwraps_state_dict_and_drops_non_tensors(tmp_path):
    obj, storages, expect = _sample(False)
    wrapped = {"epoch": 3, "state_dict": obj, "best": 0.5}
    state = load_torch_pickle(write_zip(tmp_path / "ck.pt", wrapped, storages))
    assert sorted(state) == sorted(expect)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_refuses_foreign_global_without_running_it(tmp_path, legacy):
    marker = tmp_path / "ran"
    evil = {"w": Call(G("os", "system"), (f"touch {marker}",))}
    path = (write_legacy if legacy else write_zip)(tmp_path / "evil.pth", evil, {})
    with pytest.raises(CheckpointError, match=r"refusing to load global 'os\.system'"):
        load_torch_pickle(path)
    assert not marker.exists()


def test_refuses_builtins_eval_in_header(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(dumps(Call(G("builtins", "eval"), ("1+1",))))
    with pytest.raises(CheckpointError, match="builtins.eval"):
        load_torch_pickle(path)


def test_truncated_and_missing_files(tmp_path):
    obj, storages, _ = _sample(True)
    path = write_legacy(tmp_path / "ck.pth", obj, storages)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="truncated"):
        load_torch_pickle(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_torch_pickle(tmp_path / "nope.pth")


@pytest.mark.parametrize("name,keys,params,probe,shape", [
    ("seg/espnet_p_2_q_8_camvid.pth", 189, 358193, "encoder.level3_0.c1.conv.weight", (25, 131, 3, 3)),
    ("imagenet/efficientnet-lite0-57934424.pth", 296, 4694073, "_blocks.15._project_conv.weight", (320, 1152, 1, 1)),
])
def test_reads_real_legacy_checkpoints(name, keys, params, probe, shape):
    path = SHARED / "weights" / name
    if not path.is_file():
        pytest.skip(f"needs {path} (shared weights beside the repository)")
    state = load_torch_pickle(path)
    assert len(state) == keys
    assert sum(v.size for v in state.values()) == params
    assert state[probe].shape == shape and state[probe].dtype == np.float32
    assert np.isfinite(state[probe]).all() and np.abs(state[probe]).max() > 0
