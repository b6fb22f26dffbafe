# Two entry points on a fresh machine: `make demo` (the main job, small) and `make test`.
# Both create/refresh the virtualenv and install everything, system packages included.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch first, pinned: these wheels lie on this machine's disk (a CUDA build that runs on CPU).
TORCH ?= torch==2.14.1 torchvision==0.29.1
# Headless OpenGL for MuJoCo: EGL (Mesa) and OSMesa; vismanip picks whichever renders.
# FFmpeg's libraries: LeRobot's video decoding (torchcodec).
SYSTEM_PACKAGES := libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libosmesa6 ffmpeg
# Chromium without a display: the test that opens report.html in a browser (tests only).
TEST_SYSTEM_PACKAGES := chromium-headless-shell
DEMO_DIR ?= runs/demo

.PHONY: install system-deps test-system-deps demo test test-all lint bench clean

install: system-deps $(STAMP)

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test-system-deps:
	@missing=$$(for p in $(TEST_SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing system packages for the tests:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,onnx,lerobot,ray]'
	$(PY) -m pip install -q --no-deps lerobot==0.4.4  # its torch<2.11 pin would move ours
	touch $(STAMP)

# 150 demos, the chunk head, 30 epochs, last.ckpt: 100% on 50 episodes, where 60 demos / 20 epochs gave 66%
# (deterministic head) and 72% (chunk head), and best.ckpt (a 5-episode rollout's first 5/5, epoch 10) 72% (README).
demo: install
	$(VENV)/bin/vismanip collect --config configs/collect/lift.yaml --episodes 150 --workers 2 --out $(DEMO_DIR)/lift.hdf5
	$(VENV)/bin/vismanip data validate $(DEMO_DIR)/lift.hdf5
	$(VENV)/bin/vismanip train --config configs/bc/lift.yaml data=$(DEMO_DIR)/lift.hdf5 output_dir=$(DEMO_DIR)/bc \
		policy.head=chunk trainer.max_epochs=30 rollout.every_n_epochs=10 rollout.episodes=5
	$(VENV)/bin/vismanip export $(DEMO_DIR)/bc/last.ckpt --format torchscript --out $(DEMO_DIR)/lift_policy.pt
	$(PY) scripts/run_exported_policy.py $(DEMO_DIR)/lift_policy.pt --steps 40
	$(VENV)/bin/vismanip eval $(DEMO_DIR)/bc/last.ckpt --episodes 20 --workers 2 --videos 2

test: install test-system-deps
	$(PY) -m pytest -m "not slow" -q

test-all: install test-system-deps
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check vismanip tests scripts
	$(VENV)/bin/ruff format --check vismanip tests scripts
	$(VENV)/bin/mypy vismanip

bench: install
	$(PY) scripts/bench_env.py
	$(PY) scripts/bench_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
