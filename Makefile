# cvprep: every target creates .venv on first use and is safe to run again.
# make book  - build the static site into _build/html
# make test  - run the whole test suite
# make lab   - JupyterLab on your own copies of the exercises (in workspace/)
# make clean - remove generated files (never touches workspace/)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
JOBS   ?= 2

.PHONY: book test lab clean lock

$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "cvprep needs Python 3.11, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e ".[test]"
	@touch $@

book: $(STAMP)
	$(BIN)/python -m autograder release --all --out book/_exercises
	$(BIN)/jupyter-book build . --builder html
	@echo
	@echo "The book is built. Open file://$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS)

lab: $(STAMP)
	$(BIN)/python -m autograder workspace --out workspace
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=workspace

# Regenerate the lock file from the current environment (after changing pins in pyproject.toml).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^cvprep' > requirements/lock.txt

clean:
	rm -rf _build book/_exercises .pytest_cache .hypothesis
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
