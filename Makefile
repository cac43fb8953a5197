# Two commands for a new user: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test setup setup-test bench clean lock
run: setup
	$(PY) -m app gui

# pytest-timeout ends a stuck test (10 min); this ends a run stuck anywhere else (45 min,
# the suite takes about 10), with its whole process group, so CI never waits for ever.
test: setup-test
	QT_QPA_PLATFORM=offscreen timeout --kill-after=30 2700 $(PY) -m pytest -q

setup:
	@packaging/setup_env.sh run

setup-test:
	@packaging/setup_env.sh test

# Re-resolve pyproject.toml's ranges in a clean venv and write packaging/requirements.lock;
# then `make test` and commit the lock with what passed.
lock:
	@packaging/make_lock.sh

bench: setup-test
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info

# ---- desktop bundle (PyInstaller, one folder) -- not part of `make test` ----------------
.PHONY: dist dist-test
dist: setup
	@$(PY) -c "import PyInstaller" 2>/dev/null || $(VENV)/bin/pip install -q -c packaging/requirements.lock pyinstaller
	@start=$$(date +%s); \
	$(VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath dist \
		--workpath build/pyinstaller packaging/avindex.spec || exit 1; \
	ln -sfn avindex dist/avindex/avindex-gui; \
	mkdir -p dist/avindex/share/applications dist/avindex/share/metainfo; \
	cp packaging/avindex.desktop dist/avindex/share/applications/; \
	cp packaging/io.github.avindex.metainfo.xml dist/avindex/share/metainfo/; \
	cp -r packaging/icons/hicolor dist/avindex/share/icons/; \
	end=$$(date +%s); \
	echo "dist/avindex: $$(du -sh dist/avindex | cut -f1) ($$(du -sb dist/avindex | cut -f1) bytes), built in $$((end - start)) s"

dist-test:
	@test -x dist/avindex/avindex || { echo "no bundle: run make dist first" >&2; exit 2; }
	packaging/dist_test.sh dist/avindex
