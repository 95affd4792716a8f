# Two commands (README): `make demo` and `make test`. Both create .venv on first use
# (tools/install.sh, idempotent), so nothing needs activating by hand.
PY := .venv/bin/python
export DETECTRON2_DATASETS ?= $(CURDIR)/datasets
export PYTHONWARNINGS ?= ignore::FutureWarning,ignore::UserWarning:torch.functional

.PHONY: install test demo ablation benchmark pretrain clean

install:
	@bash tools/install.sh

test: install
	$(PY) -m pytest tests/ -q --durations=15

demo: install
	$(PY) projects/DFR/train_net.py --num-gpus 1 \
	    --config-file projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml \
	    OUTPUT_DIR output/demo

ablation: install pretrain
	$(PY) tools/run_synthetic_ablation.py --seeds 0 1 2 3 4 --output output/ablation

# Backbone pretrained on a separate synthetic task, cached: a second run is a no-op.
pretrain: install
	$(PY) tools/pretrain_synthetic_backbone.py --threads 1

benchmark: install
	$(PY) tools/benchmark_losses.py

clean:
	rm -rf .venv output
