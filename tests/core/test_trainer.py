import numpy as np
import pytest
from tiny import TinyTask, tiny_config

from kits.core import checkpoint as ckpt
from kits.core.callbacks import Callback
from kits.core.config import Config
from kits.core.errors import CheckpointError, ConfigError, TrainingError
from kits.core.trainer import Trainer


class StopAt(Callback):
    """Interrupts training after ``n`` updates, saving first (like a crash right after a save)."""

    name = "stop_at"

    def __init__(self, n):
        self.n = n

    def on_step_end(self, state, control, model, logs):
        if state.step == self.n:
            control.save()
            control.stop("interrupted by test")


def make(tmp_path, callbacks=(), **trainer):
    return Trainer(Config(tiny_config(tmp_path, **trainer), path="tiny.yml"), TinyTask(), callbacks=list(callbacks))


def weights(trainer):
    return {k: v.numpy().copy() for k, v in trainer.net.state_dict().items()}


def max_diff(a, b):
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_training_learns_and_writes_outputs(tmp_path):
    trainer = make(tmp_path, epochs=4)
    before = trainer.evaluate()["accuracy"]
    summary = trainer.train()
    assert summary["steps"] == 4 * (64 // 8)
    assert summary["best_metric"] == "accuracy" and summary["best_value"] >= max(before, 0.9)
    out = tmp_path / "out"
    assert (out / "best_model.safetensors").is_file() and (out / "final_model.safetensors").is_file()
    assert "TinyNet" in (out / "config.yml").read_text()
    assert len(ckpt.list_checkpoints(out / "checkpoints")) == 2  # keep_last default


@pytest.mark.parametrize("schedule", [
    dict(iters=12, epochs=None, eval_interval=4, save_interval=4, grad_accum=2, ema=True, clip_grad_norm=1.0),
    dict(epochs=3, ema=True),
])
def test_resume_is_exact(tmp_path, schedule):
    full = make(tmp_path / "a", **schedule)
    full.train()
    part = make(tmp_path / "b", callbacks=[StopAt(7)], **schedule)
    part.train()
    assert part.state.step == 7
    resumed = make(tmp_path / "b", **schedule)
    resumed.resume(True)
    assert resumed.state.step == 7
    resumed.train()
    assert max_diff(weights(full), weights(resumed)) <= 1e-6
    ema_a = next(c for c in full.callbacks if c.name == "ema").shadow
    ema_b = next(c for c in resumed.callbacks if c.name == "ema").shadow
    assert max(float(np.abs(ema_a[k].numpy() - ema_b[k].numpy()).max()) for k in ema_a) <= 1e-6


def test_grad_accumulation_matches_big_batch(tmp_path):
    common = dict(iters=3, epochs=None, eval_interval=100, save_interval=100)
    big = make(tmp_path / "big", batch_size=16, **common)
    big.net.drop.p = 0.0
    small = make(tmp_path / "small", batch_size=8, grad_accum=2, **common)
    small.net.drop.p = 0.0
    big.train()
    small.train()
    assert big.sampler._indices()[:16] == small.sampler._indices()[:16]
    assert max_diff(weights(big), weights(small)) < 1e-5


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, epochs=3)
    cfg["model"]["fail_at_step"] = 12  # epoch 2, after the epoch-1 checkpoint
    trainer = Trainer(Config(cfg, path="tiny.yml"), TinyTask())
    with pytest.raises(TrainingError, match=r"loss became nan at step 12 .* last good checkpoint is .*step_00000008"):
        trainer.train()
    tensors, state = ckpt.read_checkpoint(tmp_path / "out/checkpoints" / ckpt.checkpoint_name(8))
    assert state["position"]["step"] == 8
    assert all(np.isfinite(v).all() for v in tensors.values() if v.dtype.kind == "f")


def test_early_stopping(tmp_path):
    trainer = make(tmp_path, iters=40, epochs=None, eval_interval=1, best_metric="accuracy",
                   early_stop_patience=3)
    summary = trainer.train()
    assert summary["steps"] < 40  # accuracy saturates at 1.0 quickly, then cannot improve


def test_keep_last_and_atomic_files(tmp_path):
    trainer = make(tmp_path, iters=10, epochs=None, save_interval=2, eval_interval=100, keep_last=3)
    trainer.train()
    names = [p.name for p in ckpt.list_checkpoints(tmp_path / "out/checkpoints")]
    assert names == [ckpt.checkpoint_name(s) for s in (6, 8, 10)]
    assert not list((tmp_path / "out/checkpoints").glob("*.tmp"))


def test_resume_errors(tmp_path):
    trainer = make(tmp_path)
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        trainer.resume(True)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        trainer.resume(tmp_path / "missing.ckpt.safetensors")
    bad = tmp_path / "out/checkpoints" / ckpt.checkpoint_name(3)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="is corrupt"):
        trainer.resume(bad)


def test_auto_resume_skips_a_corrupt_newest_checkpoint(tmp_path):
    make(tmp_path, iters=4, epochs=None, save_interval=2, eval_interval=100).train()
    newest = ckpt.list_checkpoints(tmp_path / "out/checkpoints")[-1]
    newest.write_bytes(newest.read_bytes()[:200])  # truncated, as by a full disk
    trainer = make(tmp_path, iters=4, epochs=None, save_interval=2, eval_interval=100)
    assert trainer.resume(True).name == ckpt.checkpoint_name(2)
    assert trainer.state.step == 2


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is not writable"):
        make(tmp_path, output_dir=str(blocker / "sub"))


def test_amp_on_cpu_falls_back_to_fp32(tmp_path, caplog):
    trainer = make(tmp_path, amp=True, device="cpu", epochs=1)
    assert trainer.amp is False and trainer.scaler is None
    assert "training in float32" in caplog.text
    trainer.train()


def test_class_count_mismatch_detected_from_datasets(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["val_dataset"]["num_classes"] = 4  # the config-level check needs model.num_classes; this one does not
    with pytest.raises(ConfigError, match="val_dataset has 4 classes but the model has 3"):
        Trainer(Config(cfg, path="tiny.yml"), TinyTask())


def test_visualdl_scalars_written(tmp_path):
    make(tmp_path, epochs=1, visualdl=True, log_interval=2).train()
    logs = list((tmp_path / "out/vdl").rglob("*"))
    assert any(p.is_file() and p.stat().st_size > 0 for p in logs)


def test_sampler_order_hook_is_deterministic_per_epoch():
    from kits.core.data import EpochBatchSampler

    calls = []

    def by_parity(order, batch_size, seed):  # even indices first, as a bucketing stand-in
        calls.append((batch_size, tuple(seed)))
        return sorted(order, key=lambda i: i % 2)

    sampler = EpochBatchSampler(16, 4, seed=3, order_fn=by_parity)
    sampler.set_epoch(1)
    first = [i for batch in sampler for i, _ in batch]
    sampler.set_epoch(1, skip_batches=2)
    resumed = [i for batch in sampler for i, _ in batch]
    assert all(i % 2 == 0 for i in first[:8]) and resumed == first[8:]
    assert calls[0] == (4, (3, 1))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 2])
def test_data_error_in_a_worker_reaches_the_user(tmp_path, workers):
    cfg = tiny_config(tmp_path, epochs=1, num_workers=workers)
    cfg["train_dataset"]["bad_index"] = 5
    trainer = Trainer(Config(cfg, path="tiny.yml"), TinyTask())
    with pytest.raises(Exception, match=r"sample 5 is corrupt \(file blob_5.npy\)") as err:
        trainer.train()
    assert err.type.__name__ == "DataError"
