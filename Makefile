# Two commands set up a fresh machine: `make demo` and `make test`.
# Each first builds .venv from uv.lock (installing uv with pip if missing) and the
# Debian tools the genomics checks compare against (bcftools, samtools, tabix).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
APT_TOOLS := bcftools samtools tabix chromium chromium-driver

.PHONY: help install tools uv venv demo test test-local test-classic lint bench bench-hail bench-clinical bench-imaging bench-annotate bench-link bench-upload clean wheel

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

tools:  ## Debian packages the tests use: bcftools, samtools, tabix (compared against), chromium (report page)
	@missing=""; for t in bcftools samtools tabix chromium chromedriver; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_TOOLS); \
	fi

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
	  || $(PYTHON) -m pip install --quiet --break-system-packages uv

venv: uv  ## create .venv from uv.lock (frozen: the lock is the truth)
	$(UV) sync --frozen --python $(PYTHON)

install: tools venv

demo: install  ## run the whole pipeline on generated data for a four-tier network
	$(BIN)/omicslake demo

test: install lint test-local test-classic  ## ruff + all tests on Sail, then the transform matrix on JVM Spark

lint:  ## ruff, the layering contracts (import-linter) and the dead-code check (vulture); both configured in pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/vulture

test-local:
	$(BIN)/pytest -q

test-classic:
	OMICSLAKE_TEST_ENGINE=classic $(BIN)/pytest -q -m engine_matrix

wheel: uv  ## dist/: the wheel (installed into the images), the same file as .zip (spark-submit --py-files), the locked requirements
	rm -rf dist
	$(UV) build --wheel --out-dir dist
	for w in dist/omicslake-*.whl; do cp "$$w" "$${w%.whl}.zip"; done
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project --output-file dist/requirements.txt >/dev/null

bench: install  ## genomics ingest throughput and peak memory at two sizes, against bcftools view -Ob
	$(BIN)/python benchmarks/genomics_ingest.py --samples 1000 --sites 20000 --sites 40000

bench-clinical: install  ## HL7 over MLLP to landing, HL7 and FHIR into Delta (msgs/s, resources/s)
	$(BIN)/python benchmarks/clinical_ingest.py

bench-imaging: install  ## DICOM de-identification and ingest (instances/s)
	$(BIN)/python benchmarks/imaging_ingest.py

bench-annotate: install  ## genes, ClinVar and gnomAD annotation of silver.variants (variants/s)
	$(BIN)/python benchmarks/annotate.py

bench-link: install  ## person linkage on generated populations (pairs/s, precision, recall, peak RSS)
	$(BIN)/python benchmarks/link_persons.py --persons 2000 --persons 10000

bench-upload: install  ## center uploads over HTTP: 60 concurrent + 1 GB cut and resumed (uploads/s, MB/s, p95, peak RSS)
	$(BIN)/python benchmarks/upload.py --files 60 --centers 5 --max-mb 50 --big-mb 1024

bench-hail: bench  ## the same files through Hail 0.2 import_vcf().write() in its own venv (pyspark 3.5)
	@test -x benchmarks/.hail-venv/bin/python || ($(UV) venv benchmarks/.hail-venv --python $(PYTHON) -q \
	  && $(UV) pip install --python benchmarks/.hail-venv/bin/python -q hail)
	for f in benchmarks/out/msprime_1000x20000.vcf.gz benchmarks/out/msprime_1000x40000.vcf.gz; do \
	  for p in "" 2; do benchmarks/.hail-venv/bin/python benchmarks/hail_import_vcf.py $$f /tmp/hail.mt $$p \
	    2>/dev/null | grep HAIL; done; done

clean:
	rm -rf $(VENV) .omicslake .pytest_cache .ruff_cache
