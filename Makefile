# SPDX-License-Identifier: GPL-2.0-or-later
# The README's two commands are `make demo` and `make test`; both install what they
# need (scripts/setup.sh is idempotent and takes about a second when all is present).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PYTHON := $(VENV)/bin/python
QGIS_PROCESS := scripts/qgis_process
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
ZIP := dist/qgis_landcover-$(VERSION).zip
# pytest-qgis starts QGIS in-process: give it a project-local profile, never the user's.
TEST_ENV := QT_QPA_PLATFORM=offscreen QGIS_CUSTOM_CONFIG_PATH=$(CURDIR)/.qgis/pytest-profile \
	XDG_RUNTIME_DIR=$(CURDIR)/.qgis/runtime
# LANDCOVER_TRAINING=0: no torch installed, so the training tests are left out (the
# Debian 13 chroot of test-qgis340 runs that way; the host's `make test` runs them).
PYTEST_ARGS := $(if $(filter 0,$(LANDCOVER_TRAINING)),--ignore=tests/model_training)

.PHONY: help setup demo test test-desktop test-qgis340 test-qgis344 lint package bench train-demo clean

help:
	@echo "make demo    run the plugin's main job through qgis_process on the shipped sample"
	@echo "make test    run the test suite (headless QGIS)"
	@echo "make test-desktop  the plugin zip in a real QGIS window under Xvfb (screenshots: out/screenshots/)"
	@echo "make test-qgis340  the plugin's tests and the demo on QGIS 3.40 (Debian 13 chroot, root)"
	@echo "make test-qgis344  the desktop test on QGIS 3.44 (Debian unstable chroot, root)"
	@echo "make setup   install QGIS (Debian) and the Python requirements into .venv"
	@echo "make package build $(ZIP) for QGIS's 'Install from ZIP'"
	@echo "make lint    ruff, bandit (plugin repository scan), Qt 6 check"
	@echo "make bench   benchmarks (bench/), printing measured ratios"
	@echo "make train-demo  train a small model on the shipped patches and export it"

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@mkdir -p .qgis/runtime && chmod 700 .qgis/runtime
	$(TEST_ENV) $(PYTHON) -m pytest $(PYTEST_ARGS)

# The plugin zip installed into a project-local profile and driven in a real QGIS desktop
# window under Xvfb (under a minute of QGIS, too long for `make test`); screenshots in
# out/screenshots/; see scripts/test_desktop.sh.
test-desktop:
	@bash scripts/test_desktop.sh

# Builds a Debian 13 chroot once (outside the repository, reused), then runs the
# plugin's tests and `make demo` inside it. Needs root.
test-qgis340:
	@bash scripts/test_qgis340.sh

# The same on QGIS 3.44, the last Qt 5 LTR (Debian unstable's archive snapshot, chroot
# under /var/cache/qgis-landcover/sid): the desktop test in a real QGIS 3.44 window.
test-qgis344:
	@LANDCOVER_CHROOT_SUITE=sid LANDCOVER_CHROOT_TARGETS=test-desktop bash scripts/test_qgis340.sh

# bandit: the plugin repository scans every upload with it (nosec only with a reason);
# check_qt6: what breaks with PyQt6 / QGIS 4 (scoped enums, qgis.PyQt imports, exec()).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -q -r qgis_landcover
	QT_QPA_PLATFORM=offscreen $(PYTHON) scripts/check_qt6.py qgis_landcover

package: setup
	@$(PYTHON) scripts/package.py --output $(ZIP)

bench: setup
	@bash scripts/setup.sh grass-core
	@mkdir -p .qgis/runtime && chmod 700 .qgis/runtime
	@for script in bench/bench_*.py; do \
		[ -e "$$script" ] || continue; \
		echo "== $$script"; $(TEST_ENV) $(PYTHON) "$$script" || exit 1; \
	done

train-demo: setup
	@bash scripts/train_demo.sh

clean:
	rm -rf dist build .pytest_cache .ruff_cache .qgis
