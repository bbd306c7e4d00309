# telemetry -- PGXS build.  `make install` puts the control file, the SQL script,
# the C module that declares the settings and the Python package (with its pinned
# dependencies, in a directory of its own per extension version) where PostgreSQL
# finds them.  `make demo` and `make test` do all set-up on a fresh Debian 12.

EXTENSION   = telemetry
# The version lives in telemetry.control only.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" telemetry.control)

DATA_built  = extension/build/telemetry--$(EXTVERSION).sql
EXTRA_CLEAN = extension/build python/build

PG_CONFIG ?= pg_config

# Recorded in the report (see docs/report-fields.md).
INSTALL_METHOD     ?= source
BUILD_OS_NAME      ?= $(shell uname -s)
BUILD_OS_VERSION   ?= $(shell uname -r)
# Where reports go unless a superuser changes it at run time.
TELEMETRY_ENDPOINT ?= https://telemetry.invalid/v1/report

# The interpreter PL/Python embeds (Debian's), and a pip that installs for it.
SERVER_PYTHON ?= /usr/bin/python3

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all install installcheck:
	@echo "PostgreSQL server headers are missing: run 'make deps' (postgresql-server-dev-15)." >&2; exit 1
endif

PKGLIBDIR_ := $(shell $(PG_CONFIG) --pkglibdir)
BINDIR_    := $(shell $(PG_CONFIG) --bindir)
PYTHON_DIR  = $(PKGLIBDIR_)/telemetry/$(EXTVERSION)
SQL_SOURCES = $(sort $(wildcard sql/incremental/*.sql)) $(sort $(wildcard sql/idempotent/*.sql))
PY_SOURCES  = $(shell find python/telemetry -name '*.py' -not -path '*/__pycache__/*')

# A build is for one PostgreSQL installation: when PG_CONFIG names another (make test goes
# through the majors), the C module and the SQL script (which names the bindir) are rebuilt.
# The stamp's content is the installation; it is rewritten, and so newer, only when that changes.
# (Through a variable, not $(MAKE) in the recipe: `make -n` must not run that line.)
BUILT_FOR = extension/build/built-for
PG_IDENTITY := $(BINDIR_) $(shell $(PG_CONFIG) --version 2>/dev/null)
CLEAN_MODULE = $(MAKE) -s -C extension clean
.PHONY: FORCE
$(BUILT_FOR): FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(PG_IDENTITY)' ]; then \
		MAKEFLAGS= $(CLEAN_MODULE) PG_CONFIG='$(PG_CONFIG)' && echo '$(PG_IDENTITY)' > $@; \
	fi

extension/build/telemetry--$(EXTVERSION).sql: $(SQL_SOURCES) extension/build.py telemetry.control python/telemetry/config.py \
		$(BUILT_FOR)
	$(SERVER_PYTHON) extension/build.py sql --version '$(EXTVERSION)' \
		--bindir '$(BINDIR_)' --python-dir '$(PYTHON_DIR)' \
		--cron-schedule "$$(cd python && $(SERVER_PYTHON) -c 'from telemetry import config; print(config.CRON_SCHEDULE)')" \
		--out $@ $(SQL_SOURCES)

# Third-party packages the server imports, pinned, fetched once per requirements change.
python/build/deps/.stamp: python/requirements-server.txt
	rm -rf python/build/deps
	$(SERVER_PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile \
		--target python/build/deps --requirement $<
	touch $@

# Always rebuilt: cheap, and make variables (INSTALL_METHOD=...) change it.
.PHONY: python/build/telemetry/_build.py
python/build/telemetry/_build.py:
	rm -rf python/build/telemetry
	mkdir -p python/build
	cp -r python/telemetry python/build/telemetry
	find python/build/telemetry -name __pycache__ -prune -exec rm -rf {} +
	$(SERVER_PYTHON) extension/build.py build-info --out $@ --version '$(EXTVERSION)' \
		--install-method '$(INSTALL_METHOD)' --build-os-name '$(BUILD_OS_NAME)' \
		--build-os-version '$(BUILD_OS_VERSION)' --endpoint '$(TELEMETRY_ENDPOINT)'

all: module python/build/deps/.stamp python/build/telemetry/_build.py

install: install-module install-python
clean: clean-module
.PHONY: module install-module clean-module install-python
module: $(BUILT_FOR)
	$(MAKE) -C extension PG_CONFIG='$(PG_CONFIG)'
install-module: module
	$(MAKE) -C extension install PG_CONFIG='$(PG_CONFIG)'
clean-module:
	$(MAKE) -C extension clean PG_CONFIG='$(PG_CONFIG)'

install-python: python/build/deps/.stamp python/build/telemetry/_build.py
	rm -rf '$(DESTDIR)$(PYTHON_DIR)'
	$(MKDIR_P) '$(DESTDIR)$(PYTHON_DIR)'
	cp -r python/build/deps/. python/build/telemetry '$(DESTDIR)$(PYTHON_DIR)/'
	rm -f '$(DESTDIR)$(PYTHON_DIR)/.stamp'

# ---- for people and CI -----------------------------------------------------
# The PostgreSQL majors we support: `make test` runs the whole suite on each, in this order.
# This is the one place they are listed (the README and tests/test_majors.py read it).
# `make test PG_MAJORS=15` for a quick loop on one.
PG_MAJORS = 15 17 18
# Prints the pg_config of a major, installing (15: Debian packages) or building and caching
# (17, 18: Debian source packages) it first when needed.
PROVIDE_POSTGRES = tools/provide-postgres

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV ?= .venv
DEBIAN_PACKAGES = python3-pip python3-venv gcc make chromium

.PHONY: deps debian-deps postgres-deps demo test lint
deps: debian-deps postgres-deps $(VENV)/.stamp

debian-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# The operating system's own major (Debian 12: 15), what a plain `make` and `make demo` use.
postgres-deps:
	@$(PROVIDE_POSTGRES) >/dev/null

$(VENV)/.stamp: requirements-dev.txt
	$(SERVER_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

demo: deps
	$(MAKE) all
	$(SUDO) $(MAKE) install
	$(VENV)/bin/python -m tests.demo

# Each major in turn, every one even when an earlier one fails; the exit status says whether
# all passed.  Each run opens with a banner naming the major, and pytest's own summary closes it.
test: deps
	@failed=; for major in $(PG_MAJORS); do \
		printf '\n======== PostgreSQL %s ========\n' "$$major"; \
		if pg_config=$$($(PROVIDE_POSTGRES) $$major) && echo "PG_CONFIG=$$pg_config" \
			&& $(MAKE) --no-print-directory all PG_CONFIG="$$pg_config" \
			&& PG_CONFIG="$$pg_config" $(VENV)/bin/python -m pytest $(PYTEST_ARGS); \
		then :; else failed="$$failed $$major"; fi; \
	done; \
	[ -z "$$failed" ]

lint: deps
	$(VENV)/bin/ruff check --config python/pyproject.toml python tests extension $(wildcard bench)
	$(VENV)/bin/mypy --config-file python/pyproject.toml
