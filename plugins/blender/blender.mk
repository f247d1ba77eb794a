# Blender add-on targets. Included from the top-level Makefile; also usable alone:
#   make -f plugins/blender/blender.mk blender-addon-zip | blender-venv | test-blender
# The add-on is stdlib + bpy only; the test environment holds Blender's Python module
# (the registry's bpy wheel, ~370 MB) and is kept apart from the main .venv because bpy
# pins Python 3.11 exactly.

BLENDER_PYTHON ?= python3.11
BLENDER_VENV ?= .venv-blender
BLENDER_PY := $(BLENDER_VENV)/bin/python
BLENDER_STAMP := $(BLENDER_VENV)/.installed
BLENDER_BPY ?= bpy==4.5.4
ADDON_SRC := plugins/blender/facenormals3d_blender
ADDON_ZIP := dist/facenormals3d_blender.zip

.PHONY: blender-addon-zip blender-venv test-blender

blender-addon-zip: $(ADDON_ZIP)

# Any python 3 builds the zip (stdlib zipfile); the archive holds the package folder
# at its top level, which is what Blender's "Install from Disk" expects.
$(ADDON_ZIP): $(wildcard $(ADDON_SRC)/*.py) plugins/blender/build_zip.py
	@mkdir -p $(dir $@)
	python3 plugins/blender/build_zip.py $(ADDON_SRC) $@

blender-venv: $(BLENDER_STAMP)

$(BLENDER_STAMP): plugins/blender/blender.mk
	@test -x $(BLENDER_PY) || $(BLENDER_PYTHON) -m venv $(BLENDER_VENV)
	$(BLENDER_PY) -m pip install --quiet --upgrade pip
	$(BLENDER_PY) -m pip install --quiet '$(BLENDER_BPY)' 'numpy<2' pytest
	@touch $(BLENDER_STAMP)

# The end-to-end test runs the real `facenormals3d` from the main .venv (made by `make setup`
# in the top-level Makefile); without it that test is skipped, the stand-in tests still run.
test-blender: $(BLENDER_STAMP) $(ADDON_ZIP)
	FACENORMALS3D_HOME=$(CURDIR) $(BLENDER_PY) -m pytest -q -p no:cacheprovider tests/plugins/blender
