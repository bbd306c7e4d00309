# telemetry -- PGXS build.  `make install` puts the control file, the SQL scripts
# (install, and update from every earlier release),
# the C module that declares the settings and the Python package (with its pinned
# dependencies, in a directory of its own per extension version) where PostgreSQL
# finds them.  `make demo` and `make test` do all set-up on a fresh Debian 12.

EXTENSION   = telemetry
# The version lives in telemetry.control only.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" telemetry.control)

# Every release that shipped has a manifest in sql/releases/; from each earlier
# one there is an update script, made from the same sources as the install
# script (see extension/releases.py).
RELEASES         := $(patsubst sql/releases/%.sha256,%,$(wildcard sql/releases/*.sha256))
EARLIER_RELEASES := $(filter-out $(EXTVERSION),$(RELEASES))
UPDATE_SCRIPTS    = $(foreach release,$(EARLIER_RELEASES),extension/build/telemetry--$(release)--$(EXTVERSION).sql)

DATA_built  = extension/build/telemetry--$(EXTVERSION).sql $(UPDATE_SCRIPTS)
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
SQL_SOURCES = $(wildcard sql/incremental/*.sql sql/idempotent/*.sql sql/releases/*.sha256) sql/ledger.sql
PY_SOURCES  = $(shell find python/telemetry -name '*.py' -not -path '*/__pycache__/*')

BUILD_SQL = $(SERVER_PYTHON) extension/build.py sql --version '$(EXTVERSION)' --sql-dir sql \
	--bindir '$(BINDIR_)' --python-dir '$(PYTHON_DIR)' \
	--cron-schedule "$$(cd python && $(SERVER_PYTHON) -c 'from telemetry import config; print(config.CRON_SCHEDULE)')"
SQL_BUILD_INPUTS = $(SQL_SOURCES) extension/build.py extension/releases.py telemetry.control python/telemetry/config.py

extension/build/telemetry--$(EXTVERSION).sql: $(SQL_BUILD_INPUTS)
	$(BUILD_SQL) --out $@
extension/build/telemetry--%--$(EXTVERSION).sql: $(SQL_BUILD_INPUTS)
	$(BUILD_SQL) --from '$*' --out $@

.PHONY: sql-scripts
sql-scripts: $(DATA_built)

# When a version ships: freeze its migrations (commit the manifest with the release).
.PHONY: release-manifest
release-manifest:
	$(SERVER_PYTHON) extension/build.py release-manifest --version '$(EXTVERSION)' --sql-dir sql

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
module:
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
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV ?= .venv
DEBIAN_PACKAGES = postgresql-15 postgresql-server-dev-15 postgresql-plpython3-15 \
	postgresql-15-cron postgresql-contrib python3-pip python3-venv gcc make chromium

.PHONY: deps debian-deps demo test lint
deps: debian-deps $(VENV)/.stamp

debian-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.stamp: requirements-dev.txt
	$(SERVER_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

demo: deps
	$(MAKE) all
	$(SUDO) $(MAKE) install
	$(VENV)/bin/python -m tests.demo

test: deps
	$(MAKE) all
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check --config python/pyproject.toml python tests extension $(wildcard bench)
	$(VENV)/bin/mypy --config-file python/pyproject.toml
