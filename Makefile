# The two commands a new user needs: `make demo` and `make test`.
# Both create the environment (.venv/) first when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: env demo test clean-demo

env:
	@bash tools/misc/setup_env.sh

demo: env
	@bash tools/misc/demo.sh

test: env
	@$(PY) -m pytest tests -q -p no:cacheprovider

clean-demo:
	rm -rf work_dirs/fcclip_tiny_synthetic data/synthetic_coco_panoptic
