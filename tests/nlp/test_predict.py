"""tools/predict.py on stdin, tools/eval.py on another folder, and predict_files, after tiny training runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kits import nlp
from kits.core.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nlp_fixtures import NER_BIO, ROOT, bigru_config, classifier_config, write_ner  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GLOG_minloglevel": "2"}


def tool(name, *args, stdin=None):
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *map(str, args)], input=stdin, cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ner")
    cfg = bigru_config(tmp, iters=60)
    summary = nlp.train(cfg)
    assert summary["best_value"] > 0.9
    path = tmp / "bigru.yml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path, tmp / "out"


def test_predict_tool_reads_stdin_and_prints_entities(ner_run):
    config, out = ner_run
    run = tool("predict.py", "-c", config, "-o", f"weights={out / 'best_model.safetensors'}",
               stdin="张三在北京工作\n\n李四 去上海\n")
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) == 2  # the blank line is skipped
    first, second = results
    found = {(e["type"], e["text"], e["start"], e["end"]) for e in first["entities"]}
    assert found == {("PER", "张三", 0, 2), ("LOC", "北京", 3, 5)}
    # offsets index the raw line, spaces included
    assert {(e["type"], e["text"], e["start"]) for e in second["entities"]} == {("PER", "李四", 0), ("LOC", "上海", 4)}


def test_eval_tool_on_another_folder(ner_run, tmp_path):
    config, out = ner_run
    write_ner(tmp_path, "more.json", NER_BIO[4:])
    run = tool("eval.py", "-c", config, "-o", f"weights={out / 'best_model.safetensors'}",
               f"val_dataset.root={tmp_path}", "val_dataset.list=more.json")
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads(run.stdout[run.stdout.index("{"):])
    assert metrics["f1"] > 0.9 and set(metrics) >= {"precision", "recall", "f1", "f1/PER"}
    with pytest.raises(DataError, match=r"data file not found: .*nope\.json"):
        nlp.evaluate(str(config), out / "best_model.safetensors",
                     [f"val_dataset.root={tmp_path}", "val_dataset.list=nope.json"])


def test_classifier_predict_files_writes_json_lines(tmp_path):
    cfg = classifier_config(tmp_path, iters=40)
    nlp.train(cfg)
    texts = tmp_path / "texts.txt"
    texts.write_text("the movie was great\ni hated every minute\n", encoding="utf-8")
    results = list(nlp.predict_files(cfg, tmp_path / "out/best_model.safetensors", [texts], tmp_path / "p.jsonl"))
    assert [r["label"] for r in results] == ["pos", "neg"] and all(0.5 < r["score"] <= 1 for r in results)
    assert [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()] == results
    pipe = nlp.load_model(cfg, tmp_path / "out/best_model.safetensors")
    assert nlp.predict(pipe, ["a wonderful film"])[0]["label"] == "pos"


def test_pair_classifier_predicts_tab_separated_pairs(tmp_path):
    from nlp_fixtures import write_tsv

    rows = [("the movie was great", "a wonderful film", "same"), ("i hated it", "a boring film", "same"),
            ("the movie was great", "i hated it", "diff"), ("a wonderful film", "a boring film", "diff")] * 2
    root = tmp_path / "pairs"
    write_tsv(root, "train.tsv", rows)
    cfg = classifier_config(tmp_path, iters=30)
    cfg["train_dataset"].update({"type": "TextPairDataset", "root": str(root), "list": "train.tsv", "header": False})
    cfg["val_dataset"].update({"type": "TextPairDataset", "root": str(root), "list": "train.tsv", "header": False})
    nlp.train(cfg)
    pipe = nlp.load_model(cfg, tmp_path / "out/final_model.safetensors")
    out = pipe(["the movie was great\ti hated it", "i hated it\ta boring film"])
    assert [r["label"] for r in out] == ["diff", "same"]
