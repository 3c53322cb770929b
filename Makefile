# The verbs a newcomer types: make run, make test, make bench, make lint.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
GEOIP_DB_FILE := data/geo-whois-asn-country.mmdb

.PHONY: install install-dev run migrate test bench lint format geoip clean

# `make run` needs the server's runtime dependencies only; the test and benchmark tools
# (the dev extras: pytest, a browser driver, FastAPI servers, ...) come with `make test`.
install: $(VENV)/.installed-runtime

install-dev: $(VENV)/.installed-dev

# --no-compile: Python compiles what it imports on first use; compiling every file of
# every package up front took a fifth of a first `make run`'s install here.
$(VENV)/.installed-runtime: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --no-compile -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-runtime middleware/pyproject.toml
	$(PIP) install --quiet --disable-pip-version-check -e '.[dev]' -e ./middleware
	@touch $@

# A start-up failure is said in one `error:` line by the server itself, and its status is
# 2; make would add a line of its own ("make: *** [Makefile:..: run] Error 2"), so that
# status ends the recipe quietly (`python -m server.runtime.run` still exits with it). Any
# other failure (a part that died: 1) stays make's to report.
run: install
	@if [ ! -f "$(GEOIP_DB_FILE)" ] && [ -z "$$GEOIP_DB" ] && command -v npm >/dev/null; then \
		$(MAKE) --no-print-directory geoip || echo "make geoip failed: locations stay empty"; fi
	@$(PY) -m server.runtime.run || { status=$$?; [ $$status -eq 2 ] || exit $$status; }

migrate: install
	$(VENV)/bin/flask --app wsgi db upgrade

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-dev
	$(PY) bench/run_all.py $(BENCH_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The CC0 country database from the npm package @ip-location-db/geo-whois-asn-country-mmdb.
geoip:
	@mkdir -p data/.geoip
	cd data/.geoip && npm pack --silent @ip-location-db/geo-whois-asn-country-mmdb >/dev/null
	tar -xzf data/.geoip/*.tgz -C data/.geoip
	mv data/.geoip/package/geo-whois-asn-country.mmdb $(GEOIP_DB_FILE)
	rm -rf data/.geoip
	@echo "country database: $(GEOIP_DB_FILE)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
