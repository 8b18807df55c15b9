"""Run an exported model on images, a folder, a video, a text file or JSON lines of tensors.

python deploy/infer.py --model-dir DIR --input PATH [--backend onnxruntime] [--output OUT] [--check]

Writes one JSON line per input (to OUT/results.jsonl, or stdout) and, with --output, visualised
images. --check runs every installed backend on the same inputs and compares their raw outputs
with the paddle backend (fp32: max abs diff <= 1e-4 and identical labels); it exits 1 on a failure.
"""

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kits.deploy import DeployError, InputError, Predictor, compare_backends, load_spec  # noqa: E402
from kits.deploy.backends import BACKENDS  # noqa: E402

IMAGES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEOS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def takes_images(spec) -> bool:
    return any(op["type"] == "DecodeImage" for op in spec.preprocess)


def is_visual(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in IMAGES | VIDEOS


def iter_items(path: Path):
    """Yield (id, predict() item, BGR frame or None)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGES)
        if not files:
            raise InputError(f"--input folder {path} holds no images ({', '.join(sorted(IMAGES))})")
        yield from ((str(p), str(p), None) for p in files)
    elif path.suffix.lower() in VIDEOS:
        yield from _frames(path)
    elif path.suffix.lower() in IMAGES:
        yield str(path), str(path), None
    elif path.suffix.lower() == ".jsonl":
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{n + 1} is not a JSON object of input arrays ({exc})") from None
                yield f"{path}:{n + 1}", {k: np.asarray(v) for k, v in row.items()}, None
    else:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                yield f"{path}:{n + 1}", {"text": line.strip()}, None


def _frames(path: Path):
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"cannot open video {path}")
    n = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield f"{path}#{n}", frame, frame
        n += 1
    capture.release()


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def save_outputs(out: Path, index: int, ident: str, item, frame, result: dict, labels) -> dict:
    """Masks become PNG files; image inputs get a visualised copy. Returns the JSON-ready result."""
    import cv2

    from kits.deploy.visualize import draw

    stem = f"{index:05d}_{Path(ident.split('#')[0]).stem}"
    mask = result.get("mask")
    if mask is not None:
        (out / "masks").mkdir(parents=True, exist_ok=True)
        mask_file = out / "masks" / f"{stem}.png"
        cv2.imwrite(str(mask_file), np.asarray(mask).astype(np.uint16))
        result = {**result, "mask": str(mask_file), "mask_shape": list(np.shape(mask))}
    image = frame if frame is not None else (cv2.imread(item) if isinstance(item, str) else None)
    if image is not None:
        (out / "vis").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / "vis" / f"{stem}.jpg"), draw(image, {**result, "mask": mask}, labels))
    return result


def check(args, items) -> int:
    rows = compare_backends(args.model_dir, [item for _, item, _ in items] or None,
                            threads=args.threads or 1)
    print(f"{'backend':<12} {'format':<14} {'precision':<13} {'max_abs_diff':>12} {'scaled':>9} {'tol':>8} "
          f"{'labels':>7}  status")
    failed = False
    for r in rows:
        skipped = bool(r["error"] and r["error"].startswith("not installed"))
        failed |= not r["ok"] and not skipped
        diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.3g}"
        scaled = "-" if r["max_scaled_diff"] is None else f"{r['max_scaled_diff']:.3g}"
        same = {True: "same", False: "DIFFER", None: "-"}[r["results_equal"]]
        status = "ok" if r["ok"] else ("skipped: " if skipped else "FAIL ") + (r["error"] or "")
        print(f"{r['backend']:<12} {r['format']:<14} {r['precision']:<13} {diff:>12} {scaled:>9} {r['tolerance']:>8.0e} "
              f"{same:>7}  {status}")
    return 1 if failed else 0


def run() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, help="exported model directory (holds deploy.yml)")
    ap.add_argument("--input", default=None, help="image, folder of images, video, text file or .jsonl of tensors")
    ap.add_argument("--backend", default="onnxruntime", help=f"one of: {', '.join(BACKENDS)}")
    ap.add_argument("--device", default="cpu", help="cpu, gpu or tensorrt (paddle / onnxruntime)")
    ap.add_argument("--threads", type=int, default=None, help="engine CPU threads")
    ap.add_argument("--output", default=None, help="folder for results.jsonl, masks and visualised images")
    ap.add_argument("--check", action="store_true", help="compare every installed backend with paddle")
    ap.add_argument("--limit", type=int, default=4, help="inputs used by --check (default 4)")
    args = ap.parse_args()
    spec = load_spec(args.model_dir)
    items = iter(())
    if args.input:
        path = Path(args.input)
        if not path.exists():
            raise InputError(f"--input {path} does not exist")
        if is_visual(path) and not takes_images(spec):
            raise InputError(f"{args.model_dir} is a {spec.task or 'non-image'} model taking "
                             f"{[i.name for i in spec.inputs]}, not images; give a text or .jsonl file")
        if not is_visual(path) and takes_images(spec):
            raise InputError(f"{args.model_dir} is a {spec.task or 'image'} model; give an image, a folder or a video")
        items = iter_items(path)
    if args.check:
        return check(args, list(itertools.islice(items, args.limit)))
    if not args.input:
        raise InputError("--input is required (unless --check)")
    predictor = Predictor(args.model_dir, args.backend, threads=args.threads, device=args.device)
    out = Path(args.output) if args.output else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    sink = open(out / "results.jsonl", "w", encoding="utf-8") if out else sys.stdout
    try:
        for index, (ident, item, frame) in enumerate(items):
            result = predictor.predict(item)
            if out:
                result = save_outputs(out, index, ident, item, frame, result, spec.labels)
            sink.write(json.dumps({"input": ident, "backend": args.backend, **jsonable(result)}) + "\n")
    finally:
        if sink is not sys.stdout:
            sink.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(run())
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
