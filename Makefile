# Two commands for a new user: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test setup setup-test bench clean
run: setup
	$(PY) -m app gui

test: setup-test
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

setup:
	@packaging/setup_env.sh run

setup-test:
	@packaging/setup_env.sh test

bench: setup-test
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
