"""Subprocess entry for tests: train the tiny task; used by the kill/resume and distributed tests."""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from tiny import TinyTask, tiny_config  # noqa: E402

from kits.core.callbacks import Callback  # noqa: E402
from kits.core.config import Config  # noqa: E402
from kits.core.trainer import Trainer  # noqa: E402


class Slow(Callback):
    """Sleeps after each update and reports progress, so a test can kill the process mid-epoch."""

    name = "slow"

    def __init__(self, seconds):
        self.seconds = seconds

    def on_step_end(self, state, control, model, logs):
        print(f"STEP {state.step}", flush=True)
        time.sleep(self.seconds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    cfg = tiny_config(Path(args.out), epochs=args.epochs, save_interval=1, eval_interval=100, keep_last=2)
    cfg["trainer"]["output_dir"] = args.out
    cfg["lr_scheduler"] = {"type": "Constant"}
    trainer = Trainer(Config(cfg, path="tiny.yml"), TinyTask(), callbacks=[Slow(args.sleep)])
    if args.resume:
        trainer.resume(True)
    trainer.train()
    rank = paddle.distributed.get_rank()
    np.savez(Path(args.out) / f"weights_rank{rank}.npz", **{k: v.numpy() for k, v in trainer.net.state_dict().items()})


if __name__ == "__main__":
    main()
