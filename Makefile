# vis_d2: the two commands a newcomer needs.
#   make demo   generate synthetic data, train tiny MaskTrack R-CNN, evaluate, write output/demo/
#   make test   run the CPU test suite
#   make bench  every performance figure as one markdown table (a few minutes; not part of make test)
# Both create ./.venv on first use (torch, detectron2, vis_d2); later runs reuse it.
VENV  ?= .venv
PY    := $(VENV)/bin/python
READY := $(VENV)/.vis_d2-ready

.PHONY: setup test demo bench clean-demo

setup: $(READY)

$(READY): setup.py tools/setup_env.sh tools/install_detectron2.py
	bash tools/setup_env.sh $(VENV)
	touch $(READY)

test: $(READY)
	$(PY) -m pytest -q tests

demo: $(READY)
	bash tools/demo.sh

bench: $(READY)
	$(PY) tools/benchmark_all.py $(BENCH_ARGS)

clean-demo:
	rm -rf output/demo
