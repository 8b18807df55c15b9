"""Pieces the kit benchmarks share: the timed training step and the kit's side of it."""

from __future__ import annotations

import time


def train_rate(model, opt, sched, batches: list[dict], count_key: str) -> float:
    """Samples/s of forward + loss + backward + optimizer and schedule step over ``batches`` (dicts
    of paddle tensors); ``count_key`` names the tensor whose first dimension counts the samples."""
    start = time.perf_counter()
    for batch in batches:
        loss = model(dict(batch))["loss"]  # a copy: PaddleDetection's models keep the dict they get
        loss.backward()
        opt.step()
        opt.clear_grad()
        sched.step()
    return sum(int(b[count_key].shape[0]) for b in batches) / (time.perf_counter() - start)


def kit_train_rate(cfg, task, batches: list[dict], count_key: str) -> float:
    """The kit's step as its Trainer takes it (``model(batch)['loss']``, the config's optimizer and
    schedule) on a freshly built, seeded model; ``batches`` hold numpy arrays."""
    import paddle

    from kits.core.optim import build_optimizer, build_scheduler

    paddle.seed(0)
    model = task.build_model(cfg)
    model.train()
    sched = build_scheduler(dict(cfg["lr_scheduler"]), cfg["optimizer"]["lr"], len(batches), 1)
    opt = build_optimizer(dict(cfg["optimizer"]), model, sched)
    tensors = [{k: paddle.to_tensor(v) for k, v in b.items()} for b in batches]
    return train_rate(model, opt, sched, tensors, count_key)
