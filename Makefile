# zoo's set-up. A newcomer on a fresh machine runs one of:
#   make run    install everything, then train the CNN on the real Fashion-MNIST
#   make test   install everything (and Debian's postgresql server binaries and chromium), then run
#               the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PLUGINS := plugins/zoo-rnn plugins/zoo-lstm plugins/zoo-cnn
FASHION := /usr/share/datasets/fashion-mnist
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PGBIN   = $(wildcard /usr/lib/postgresql/*/bin/pg_ctl)

.PHONY: setup data postgresql browser run test bench clean

setup: $(VENV)/.installed data

# Set-up output: one line per package pip collects (its progress), then what it installed;
# pip's other lines are left out, its errors are not.
$(VENV)/.installed: pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	@echo "creating the virtual environment $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing zoo-core, TensorFlow and the plugins (the long step: a few minutes)"
	@bash -o pipefail -c '$(BIN)/python -m pip install -e ".[test]" $(addprefix -e ,$(PLUGINS)) \
	  | { grep --line-buffered -E "^(Collecting|Successfully installed)" || true; }'
	@touch $@

# The real Fashion-MNIST from Debian's dataset-fashion-mnist, where apt exists;
# elsewhere zoo downloads it on first use.
data:
	@if [ -f $(FASHION)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST: $(FASHION)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "no apt-get here: zoo will download Fashion-MNIST on first use"; \
	fi

# The PostgreSQL server binaries the tests start a throw-away server from (Debian's
# postgresql package; the tests never use a server already running).
postgresql:
	@if [ -n "$(PGBIN)" ]; then \
	  echo "PostgreSQL: $(dir $(firstword $(PGBIN)))"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else \
	  echo "no apt-get here: the PostgreSQL store tests are skipped (install PostgreSQL's server)"; \
	fi

# The headless Chromium and its driver the web tests open zoo serve's pages in (Debian's
# chromium and chromium-driver; driven by Selenium, nothing downloaded at run time).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  echo "Chromium: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
	  echo "no apt-get here: the browser tests are skipped (install chromium and chromedriver)"; \
	fi

run: setup
	@echo "$(BIN)/zoo run cnn --dataset fashion"
	@$(BIN)/zoo run cnn --dataset fashion

# -n: one pytest worker a core (at most 4: each holds TensorFlow and its own trained
# runs); --dist loadfile keeps each file's module-scoped fixtures in one worker
test: setup postgresql browser
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

clean:
	rm -rf $(VENV) build dist *.egg-info plugins/*/*.egg-info
