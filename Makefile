# Everything runs inside .venv, created and filled from pyproject.toml (the one place with pins).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := train,onnx,openvino,mnn,ncnn,detection,nlp,dev
export OMP_NUM_THREADS ?= 2
export GLOG_minloglevel ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup test test-all demo bench bench-detection bench-segmentation bench-nlp env clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24" "setuptools>=68" wheel
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q --no-deps $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['tool']['paddlekits']['no-deps']))")
	$(PY) tools/env_check.py
	touch $(STAMP)

## the default test run (CI): everything but tests marked slow
test: setup
	$(PY) -m pytest

## every test, slow ones included
test-all: setup
	$(PY) -m pytest -m "slow or not slow"

## the main job end to end on bundled defaults
demo: setup
	$(PY) tools/demo.py

bench: setup
	$(PY) benchmarks/trainer_overhead.py

## PicoDet-S vs PaddleDetection 2.6 (installed --no-deps under output/baselines/)
bench-detection: setup
	$(PY) benchmarks/detection.py --install-baseline $(if $(wildcard output/picodet_s_416_roadsign/best_model.safetensors),--weights output/picodet_s_416_roadsign/best_model.safetensors)

## PP-LiteSeg-STDC1 vs PaddleSeg 2.8 (installed --no-deps under output/baselines/), ESPNet CamVid mIoU
bench-segmentation: setup
	$(PY) benchmarks/segmentation.py --install-baseline

## MiniLM on SST-2 vs HF transformers (installs torch CPU + transformers into .venv)
bench-nlp: setup
	$(PY) -m pip install -q -e ".[bench-nlp]"
	$(PY) benchmarks/nlp.py $(if $(wildcard output/minilm_l6_sst2/best_model.safetensors),--weights output/minilm_l6_sst2/best_model.safetensors)

env: setup
	$(PY) tools/env_check.py

clean:
	rm -rf $(VENV) output build *.egg-info
