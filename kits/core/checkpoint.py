"""Training checkpoints: one safetensors file per checkpoint, written atomically.

A checkpoint holds every tensor of the model, the optimizer and stateful callbacks (EMA), and a
JSON ``state`` entry in the file's metadata with the position in training, the LR schedule, the
RNG states and the callbacks' scalar state. No pickle is involved, so loading a checkpoint never
runs code from the file.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import paddle

from .errors import CheckpointError
from .fileio import atomic_path

log = logging.getLogger(__name__)
SUFFIX = ".ckpt.safetensors"
_NAME = re.compile(r"^step_(\d+)" + re.escape(SUFFIX) + "$")


def _split(state: Mapping[str, Any], prefix: str, tensors: dict, scalars: dict) -> None:
    """Put array-likes into ``tensors`` under ``prefix`` and the rest (JSON-able) into ``scalars``."""
    for key, value in state.items():
        if hasattr(value, "shape") and hasattr(value, "numpy"):
            tensors[f"{prefix}{key}"] = np.ascontiguousarray(value.numpy())
        elif isinstance(value, np.ndarray):
            tensors[f"{prefix}{key}"] = np.ascontiguousarray(value)
        else:
            scalars[key] = value


def optimizer_state(optimizer, model) -> tuple[dict, dict]:
    """Optimizer tensors keyed by the model's structured names, so they survive a new process.

    Paddle names accumulators after global parameter names (``linear_3.w_0_moment1_0``) that
    depend on creation order; structured names (``head.weight``) do not.
    """
    by_name = {p.name: key for key, p in model.named_parameters()}
    tensors, scalars = {}, {}
    for key, value in optimizer.state_dict().items():
        if not hasattr(value, "shape"):
            scalars[key] = value
            continue
        owner = _owner(key, by_name)
        tensors[f"{by_name[owner]}|{key[len(owner):]}" if owner else f"|{key}"] = value.numpy()
    return tensors, scalars


def _owner(key: str, by_name: Mapping[str, str]) -> str | None:
    hits = [name for name in by_name if key.startswith(name + "_")]
    return max(hits, key=len) if hits else None


def restore_optimizer(optimizer, model, tensors: Mapping[str, np.ndarray], scalars: Mapping) -> None:
    to_name = {key: p.name for key, p in model.named_parameters()}
    state: dict[str, Any] = dict(scalars)
    for key, value in tensors.items():
        owner, _, suffix = key.partition("|")
        state[(to_name[owner] if owner else "") + suffix] = paddle.to_tensor(value)
    optimizer.set_state_dict(state)


def rng_state() -> dict:
    paddle_states = [s.__getstate__() for s in paddle.get_rng_state()]
    np_state = np.random.get_state()
    return {
        "python": _jsonable(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "paddle": _jsonable(paddle_states),
    }


def set_rng_state(state: Mapping) -> None:
    from paddle.base.libpaddle import GeneratorState

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    generators = []
    for raw in state["paddle"]:
        gen = GeneratorState.__new__(GeneratorState)
        gen.__setstate__(tuple(raw))
        generators.append(gen)
    paddle.set_rng_state(generators)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def save_checkpoint(path: str | Path, *, model, optimizer, scheduler, callbacks: Mapping[str, Any],
                    position: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Path:
    """Write the full training state to ``path`` atomically."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    model_scalars: dict = {}
    _split(model.state_dict(), "model/", tensors, model_scalars)
    opt_tensors, opt_scalars = optimizer_state(optimizer, model)
    tensors.update({f"optim/{k}": v for k, v in opt_tensors.items()})
    cb_scalars = {}
    for name, cb_state in callbacks.items():
        scalars: dict = {}
        _split(cb_state, f"cb/{name}/", tensors, scalars)
        cb_scalars[name] = scalars
    state = {
        "format": 1,
        "position": dict(position),
        "optimizer": opt_scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "callbacks": cb_scalars,
        "rng": rng_state(),
        "extra": dict(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"state": json.dumps(state)})
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Return ``(tensors, state)``; a missing, truncated or foreign file is a CheckpointError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        state = json.loads(meta["state"])
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a training checkpoint "
                              f"({type(exc).__name__}: {exc}); resume from an earlier one") from exc
    return tensors, state


def section(tensors: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoints in ``directory``, oldest first (by step number)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}{SUFFIX}"


def latest_valid(directory: str | Path) -> tuple[Path, dict, dict] | None:
    """The newest checkpoint that reads back cleanly; corrupt ones are skipped with a warning."""
    for path in reversed(list_checkpoints(directory)):
        try:
            tensors, state = read_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping %s", exc)
            continue
        return path, tensors, state
    return None


def prune(directory: str | Path, keep_last: int, protect: tuple[Path, ...] = ()) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (never one in ``protect``)."""
    for path in list_checkpoints(directory)[:-keep_last]:
        if path not in protect:
            path.unlink(missing_ok=True)
