# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Everything else here is a step they depend on; re-running is fast when nothing changed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ICT_ARCHIVE ?= ../shared/data/ICT-FaceKit.tar.gz
ICT_DIR := .cache/ICT-FaceKit
OUT ?= out

.PHONY: setup demo test test-fast ict system-deps clean

setup: $(STAMP) ict

system-deps:
	@bash scripts/system-deps.sh

$(STAMP): pyproject.toml scripts/system-deps.sh
	@bash scripts/system-deps.sh
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The ICT FaceKit model is extracted into .cache when the archive is beside the checkout.
ict:
	@if [ -f "$(ICT_DIR)/FaceXModel/generic_neutral_mesh.obj" ]; then :; \
	elif [ -f "$(ICT_ARCHIVE)" ]; then mkdir -p .cache && tar xzf "$(ICT_ARCHIVE)" -C .cache && echo "extracted ICT FaceKit to $(ICT_DIR)"; \
	else echo "note: $(ICT_ARCHIVE) not found; tests that need the ICT model will be skipped"; fi

demo: setup
	@bash scripts/demo.sh "$(OUT)"

test: setup
	@bash scripts/run-tests.sh

clean:
	rm -rf $(VENV) .cache $(OUT) .pytest_cache .venv-blender .venv-blender-4.2 dist

# Blender add-on: zip, separate bpy test environment, headless tests (see plugins/README.md).
include plugins/blender/blender.mk
test-blender: setup
