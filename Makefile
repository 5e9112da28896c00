# Two commands do everything on a fresh Debian machine (see README):
#   make demo   render a small piano/violin set, build TFRecords, separate and score it
#   make test   run the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= data/demo
RESULTS ?= results
DEMO_PRIORS ?= ncsn glow
DEMO_CHAINS ?=
DEMO_FROM_NMF ?= 0

.PHONY: setup test demo clean-demo
setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt tools/setup.sh
	VENV=$(VENV) bash tools/setup.sh
	touch $@

test: $(STAMP)
	$(PY) -m pytest -n 2 -q tests

demo: $(STAMP)
	bash tools/demo.sh $(PY) $(DEMO) $(RESULTS) "$(DEMO_PRIORS)" "$(DEMO_CHAINS)" "$(DEMO_FROM_NMF)"

clean-demo:
	rm -rf $(DEMO) $(RESULTS)/demo
