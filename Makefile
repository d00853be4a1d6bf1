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
	$(BIN)/zoomsr backbones install
	$(BIN)/zoomsr zoom samples/zoom/wide.jpg --ref samples/zoom/tele.jpg \
	  -o out/demo/wide_zoom_x4.png --save-inputs out/demo/prepared --overwrite
	$(BIN)/zoomsr upscale samples/zoom/wide.jpg -o out/demo/wide_sisr_x4.png --scale 4
	@echo "demo outputs are in out/demo/: wide_zoom_x4.png is the bundled iPhone wide crop"
	@echo "(samples/zoom/wide.jpg) super-resolved x4 by selfdzsr-pp-x4 with the tele shot as"
	@echo "reference; wide_sisr_x4.png is the single-image default-x4 for comparison;"
	@echo "prepared/ holds the LR and the aligned, colour-matched reference the model saw."

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
