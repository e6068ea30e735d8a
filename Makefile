# ontoscope: set-up, the default job, the test suite and the benchmarks.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= runs/demo
# System packages of the SoundFont stimuli: libfluidsynth and the FluidR3 General MIDI bank.
SF_DEBS := fluidsynth fluid-soundfont-gm
SF_BANK := /usr/share/sounds/sf2/FluidR3_GM.sf2
# The headless browser the report's test loads the HTML report in.
BROWSER_DEBS := chromium

# Shell tests and commands of the system-package targets below: root with apt-get; $(call apt_install,DEBS,WHY)
# installs DEBS quietly, updating the package lists and retrying once if the first attempt fails.
CAN_APT := [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
apt_install = echo "installing $(1) with apt-get ($(2))"; export DEBIAN_FRONTEND=noninteractive; \
  { apt-get install -y -q --no-install-recommends $(1) >/dev/null 2>&1 || \
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $(1) >/dev/null 2>&1; }; }

.PHONY: setup soundfont browser run test bench findings lint clean

setup: soundfont browser $(STAMP)

# Installs SF_DEBS where it can (root and apt-get); never fails: without them the SoundFont tests are skipped.
soundfont:
	@if { [ -n "$$ONTOSCOPE_SOUNDFONT" ] || [ -f $(SF_BANK) ]; } && \
	    $(PY) -c "import ctypes.util, sys; sys.exit(not ctypes.util.find_library('fluidsynth'))"; then :; \
	elif $(CAN_APT); then \
	  $(call apt_install,$(SF_DEBS),SoundFont stimuli) || \
	  echo "apt-get could not install $(SF_DEBS); the SoundFont tests will be skipped"; \
	else \
	  echo "SoundFont stimuli need libfluidsynth and a GM bank: install them with" \
	       "'sudo apt-get install $(SF_DEBS)' (or set ONTOSCOPE_SOUNDFONT to a .sf2 file); until then their tests are skipped"; \
	fi

# Installs BROWSER_DEBS where it can (root and apt-get); never fails: without Chromium the browser test is skipped.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif $(CAN_APT); then \
	  $(call apt_install,$(BROWSER_DEBS),headless test of the HTML report) || \
	  echo "apt-get could not install $(BROWSER_DEBS); the report's browser test will be skipped"; \
	else \
	  echo "the report's browser test needs Chromium: install it with 'sudo apt-get install $(BROWSER_DEBS)'; until then it is skipped"; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,adapters,soundfont,ray]'
	$(BIN)/pip install -q --no-deps torchcrepe==0.0.24 pesto-pitch==2.0.1 torchfcpe==0.0.4 basic-pitch==0.4.0 \
	  resemblyzer==0.1.4
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 'torch was replaced')"
	touch $(STAMP)

run: setup
	$(BIN)/ontoscope run configs/demo.yaml --out $(OUT)

# lint-imports: the layering contract of pyproject.toml's [tool.importlinter] (docs/architecture.md).
test: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/run.py

# docs/findings.md: three studies in two one-thread chains side by side (architecture; scale and the real models,
# then the recorded instruments), then every table of the page (runs/findings_tables.md, with the energy the
# autoencoders keep per octave) and its figures.
FINDINGS := findings_arch findings_soundfont findings_scale
findings: setup
	@start=$$(date +%s); \
	OMP_NUM_THREADS=1 $(BIN)/ontoscope run configs/findings_arch.yaml & a=$$!; \
	{ OMP_NUM_THREADS=1 $(BIN)/ontoscope run configs/findings_scale.yaml && \
	  OMP_NUM_THREADS=1 $(BIN)/ontoscope run configs/findings_soundfont.yaml; } & b=$$!; \
	wait $$a && wait $$b && \
	$(BIN)/python scripts/findings_tables.py $(addprefix runs/,$(FINDINGS)) --figures docs/figures \
	    > runs/findings_tables.md && \
	for r in findings_arch findings_soundfont; do \
	    printf '\n# %s: what reconstruction keeps, per octave\n\n' $$r && \
	    $(BIN)/python scripts/band_energy.py runs/$$r || exit 1; \
	done >> runs/findings_tables.md && \
	echo "findings: $$(( ($$(date +%s) - start) / 60 )) min; tables in runs/findings_tables.md"

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache .import_linter_cache
