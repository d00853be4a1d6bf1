# Everything installs itself: a fresh machine needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.zoomsr-installed
SHARED ?= ../shared
# torch/torchvision are pinned: pip takes these from local disk here.
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-slow lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m pip install --quiet $(TORCH) 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import torch, torchvision, zoomsr, cv2, skimage" \
	  || { echo "zoomsr: installation failed (see pip output above)"; exit 1; }
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/zoomsr upscale samples/lowres/airplane_lr.png -o out/demo/airplane_x4.png --scale 4
	$(BIN)/zoomsr eval --model default-x4 --data samples/bench --scale 4 --per-image \
	  --out out/demo/default_x4_eval
	$(BIN)/zoomsr eval --method bicubic --data samples/bench --scale 4 --out out/demo/bicubic_x4_eval
	@echo "demo outputs are in out/demo/ (airplane_x4.png: the bundled 80x60 crop super-resolved x4)"

test: $(STAMP)
	$(BIN)/zoomsr backbones install
	ZOOMSR_SHARED=$(SHARED) $(BIN)/python -m pytest

test-slow: $(STAMP)
	ZOOMSR_SHARED=$(SHARED) $(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
