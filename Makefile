# faceedit-bench: every target calls the `faceedit-bench` CLI; no logic lives here.
# Variables pass straight through, e.g. `make bench METHOD=stgan RES=256 DATA=celeba DEVICES=4`;
# DATA may be a folder in the CelebA / CelebA-HQ layout; ARGS="key=value ..." passes Hydra overrides.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/faceedit-bench
STAMP  := $(VENV)/.installed

# Optional pass-through variables: only those set on the command line reach the CLI, and each
# target passes only the flags its subcommand takes (make leaderboard METHOD=x must not fail).
opt = $(if $($(1)),--$(2) $($(1)))
RUN_ARGS  := $(call opt,METHOD,method) $(call opt,VARIANT,variant) $(call opt,RES,res) $(call opt,DATA,data) $(call opt,PROFILE,profile) \
             $(call opt,DEVICES,devices) $(call opt,NODES,nodes) $(call opt,PRECISION,precision) $(call opt,CKPT,ckpt) \
             $(call opt,OUT,out)
EVAL_ARGS := $(RUN_ARGS) $(call opt,N,n)
DATA_ARGS := $(call opt,DATA,data) $(call opt,RES,res) $(call opt,OUT,out)

.DEFAULT_GOAL := help
.PHONY: help install test clean bench eval leaderboard classifier masks store synth train

help: ## list the targets with what each does
	@grep -E '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install the package with its dev extra (idempotent)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 || $(PY) -m pip install -q "torch>=2.4,<2.15" "torchvision>=0.19,<0.30"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

TEST_WORKERS ?= 2
test: $(STAMP) ## run the test suite (CPU, tiny sizes; TEST_WORKERS=2 processes, one test file each at a time)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(TESTARGS)

clean: ## remove caches, build outputs and run directories (keeps .venv and committed results)
	rm -rf build dist *.egg-info .pytest_cache runs outputs wandb lightning_logs
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

bench: $(STAMP) ## Quickstart: data + classifier + train + evaluate + leaderboard (METHOD= RES= DATA= PROFILE= DEVICES= NODES= PRECISION= CKPT=)
	$(CLI) bench $(EVAL_ARGS) $(ARGS)

train: $(STAMP) ## train a method, resuming from its last checkpoint (METHOD= RES= DATA= PROFILE= DEVICES= NODES= PRECISION= CKPT= OUT=)
	$(CLI) fit $(RUN_ARGS) $(ARGS)

classifier: $(STAMP) ## train the TARR attribute classifier on a dataset store (DATA= RES= OUT=)
	$(CLI) classifier $(DATA_ARGS)

eval: $(STAMP) ## evaluate a checkpoint only (CKPT=path [METHOD= RES= DATA=]) and update the leaderboards
	$(CLI) eval $(EVAL_ARGS) $(ARGS)

masks: $(STAMP) ## parse every image of a dataset into the store's label maps (DATA=dir|celeba|celebahq RES= PARSER_WEIGHTS= [GT=1])
	$(CLI) masks $(DATA_ARGS) $(if $(PARSER_WEIGHTS),--parser-weights $(PARSER_WEIGHTS)) $(if $(GT),--gt)

leaderboard: $(STAMP) ## re-render leaderboards/ from results/*.jsonl and leaderboards/papers/*.csv
	$(CLI) leaderboard $(call opt,OUT,out)

store: $(STAMP) ## decode a dataset into the memory-mapped store (DATA=dir|celeba|celebahq|synth RES= OUT= N=)
	$(CLI) store $(DATA_ARGS) $(call opt,N,synth-n)

synth: $(STAMP) ## export SynthFaces in the CelebA layout, resumable (N= RES= OUT=; default 12000 x 64 px into data/synthfaces/n<N>_r<RES>)
	$(CLI) synth $(call opt,N,n) $(call opt,RES,res) $(call opt,OUT,out)
