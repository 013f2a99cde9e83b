# Two commands do all set-up on a fresh machine:
#   make run    installs what it needs, then runs the default experiment on real data
#   make test   installs, then runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= configs/ssl/simclr_fashion_mnist.py
WORKDIR ?= workdirs/simclr_fashion_mnist
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist

.PHONY: install install-bench run test test-slow bench data

# constraints.txt pins the tested versions; pyproject.toml holds the ranges a user's project resolves against.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

install-bench: install
	$(PY) -m pip install -q -c constraints.txt -e ".[bench]"

# Fashion-MNIST comes from Debian's package; without root or apt, say how to get it.
data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] || [ -f $(FMNIST_DIR)/train-images-idx3-ubyte ]; then \
	  echo "Fashion-MNIST found in $(FMNIST_DIR)."; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null || \
	    { echo "Could not install Fashion-MNIST: run 'sudo apt-get install dataset-fashion-mnist', or put the four IDX files in a folder and pass FMNIST_DIR=that/folder."; exit 1; }; \
	else \
	  echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist', or put the four IDX files in a folder and pass FMNIST_DIR=that/folder."; exit 1; \
	fi

run: install data
	$(PY) -m ssl_jax.main --config=$(CONFIG) --workdir=$(WORKDIR) --config.data.data_dir=$(FMNIST_DIR)

test: install
	$(PY) -m pytest -q -n 2 --dist worksteal tests

# The end-to-end runs marked slow (e.g. two real steps of every CIFAR-10 recipe on mocked TFDS).
test-slow: install
	$(PY) -m pytest -q -n 2 --dist worksteal -m slow tests

bench: install-bench
	$(PY) benchmarks/losses.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/conv_layers.py
