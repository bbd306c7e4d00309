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
# The packages the server imports, installed together per extension version:
# the extension's own and the wire protocol's (which the collector shares).
PY_PACKAGES = telemetry_extension telemetry_protocol

extension/build/telemetry--$(EXTVERSION).sql: $(SQL_SOURCES) extension/build.py telemetry.control
	$(SERVER_PYTHON) extension/build.py sql --version '$(EXTVERSION)' \
		--bindir '$(BINDIR_)' --python-dir '$(PYTHON_DIR)' \
		--out $@ $(SQL_SOURCES)

# Third-party packages the server imports, pinned, fetched once per requirements change.
python/build/deps/.stamp: python/requirements-server.txt
	rm -rf python/build/deps
	$(SERVER_PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile \
		--target python/build/deps --requirement $<
	touch $@

# Always rebuilt: cheap, and make variables (INSTALL_METHOD=...) change it.
.PHONY: python/build/telemetry_extension/_build.py
python/build/telemetry_extension/_build.py:
	rm -rf $(addprefix python/build/,$(PY_PACKAGES))
	mkdir -p python/build
	cp -r $(addprefix python/,$(PY_PACKAGES)) python/build/
	find $(addprefix python/build/,$(PY_PACKAGES)) -name __pycache__ -prune -exec rm -rf {} +
	$(SERVER_PYTHON) extension/build.py build-info --out $@ --version '$(EXTVERSION)' \
		--install-method '$(INSTALL_METHOD)' --build-os-name '$(BUILD_OS_NAME)' \
		--build-os-version '$(BUILD_OS_VERSION)' --endpoint '$(TELEMETRY_ENDPOINT)'

all: module python/build/deps/.stamp python/build/telemetry_extension/_build.py

install: install-module install-python
clean: clean-module
.PHONY: module install-module clean-module install-python
module:
	$(MAKE) -C extension PG_CONFIG='$(PG_CONFIG)'
install-module: module
	$(MAKE) -C extension install PG_CONFIG='$(PG_CONFIG)'
clean-module:
	$(MAKE) -C extension clean PG_CONFIG='$(PG_CONFIG)'

install-python: python/build/deps/.stamp python/build/telemetry_extension/_build.py
	rm -rf '$(DESTDIR)$(PYTHON_DIR)'
	$(MKDIR_P) '$(DESTDIR)$(PYTHON_DIR)'
	cp -r python/build/deps/. $(addprefix python/build/,$(PY_PACKAGES)) '$(DESTDIR)$(PYTHON_DIR)/'
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
	$(VENV)/bin/python -m demo

test: deps
	$(MAKE) all
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check --config python/pyproject.toml python tests extension bench demo
	$(VENV)/bin/ruff format --config python/pyproject.toml --check python tests extension bench demo
	$(VENV)/bin/mypy --config-file python/pyproject.toml
