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
# script (see extension/migrations.py).
RELEASES         := $(patsubst sql/releases/%.sha256,%,$(wildcard sql/releases/*.sha256))
EARLIER_RELEASES := $(filter-out $(EXTVERSION),$(RELEASES))
UPDATE_SCRIPTS    = $(foreach release,$(EARLIER_RELEASES),extension/build/telemetry--$(release)--$(EXTVERSION).sql)

# Earlier releases a database may still be on are installed beside this one, as
# they shipped: each one's Python package, built by its own Makefile in the tree
# of its release commit (sql/releases/commits), exported with git archive into
# python/build/releases/<version>/.  A database not yet updated keeps running its
# own version (README, "Upgrading").  Not their install scripts: no database needs
# one to keep running or to update, and theirs ran the migrations without the
# pinned search_path (CHANGELOG 0.3.0, the security fix), so `CREATE EXTENSION
# telemetry VERSION '0.2.0'` is not offered.  Not 0.1.0: it was never packaged,
# so no package upgrade removes its files, and `make install` never removes an
# earlier one's.
RELEASE_COMMITS  = sql/releases/commits
NOT_CARRIED      = 0.1.0
CARRIED_RELEASES = $(filter-out $(NOT_CARRIED),$(EARLIER_RELEASES))
RELEASE_TREES    = python/build/releases

SQL_SCRIPTS = extension/build/telemetry--$(EXTVERSION).sql $(UPDATE_SCRIPTS)
DATA_built  = $(SQL_SCRIPTS)
# The release trees are sources, kept by `make clean`: a build outside a git
# checkout (the Debian package's) cannot export them again.
EXTRA_CLEAN = extension/build $(filter-out $(RELEASE_TREES),$(wildcard python/build/*))

PG_CONFIG ?= pg_config

# Recorded in the report (see docs/report-fields.md).
INSTALL_METHOD     ?= source
BUILD_OS_NAME      ?= $(shell uname -s)
BUILD_OS_VERSION   ?= $(shell uname -r)
# Where reports go unless a superuser changes it at run time.  A host under
# .invalid (the placeholder) is no endpoint: such a build sends nothing.
TELEMETRY_ENDPOINT ?= https://telemetry.invalid/v1/report
# telemetry.metrics_level when nothing sets it: basic, or off for a distributor
# whose package must not send unless the DBA turns it on (README, "Packaging").
TELEMETRY_DEFAULT_LEVEL ?= basic
ifeq ($(filter basic off,$(TELEMETRY_DEFAULT_LEVEL)),)
$(error TELEMETRY_DEFAULT_LEVEL must be basic or off, not '$(TELEMETRY_DEFAULT_LEVEL)')
endif

# The interpreter PL/Python embeds (Debian's), and a pip that installs for it.
SERVER_PYTHON ?= /usr/bin/python3
# Third-party packages the server imports: `pinned` installs requirements-server.txt
# with pip beside the package; `system` installs none and leaves them to the
# distribution (the Debian package depends on python3-requests, python3-packaging).
SERVER_PYTHON_DEPS ?= pinned
ifeq ($(SERVER_PYTHON_DEPS),pinned)
SERVER_DEPS_STAMP = python/build/deps/.stamp
else ifneq ($(SERVER_PYTHON_DEPS),system)
$(error SERVER_PYTHON_DEPS must be pinned or system, not '$(SERVER_PYTHON_DEPS)')
endif

# pg_regress: tests/regress/sql/*.sql against tests/regress/expected/*.out.  `make installcheck` runs
# them on the server PGHOST/PGPORT point at, `make check` on a temporary one.
REGRESS      = $(sort $(notdir $(basename $(wildcard tests/regress/sql/*.sql))))
REGRESS_OPTS = --inputdir=tests/regress --no-locale

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all install installcheck:
	@echo "PostgreSQL server headers are missing: run 'make deps' (postgresql-server-dev-15)." >&2; exit 1
endif

PKGLIBDIR_ := $(shell $(PG_CONFIG) --pkglibdir 2>/dev/null)
BINDIR_    := $(shell $(PG_CONFIG) --bindir 2>/dev/null)
PYTHON_DIR  = $(PKGLIBDIR_)/telemetry/$(EXTVERSION)
SQL_SOURCES = $(wildcard sql/incremental/*.sql sql/idempotent/*.sql sql/releases/*.sha256) sql/ledger.sql
# The packages the server imports, installed together per extension version:
# the extension's own and the wire protocol's (which the collector shares).
PY_PACKAGES = telemetry_extension telemetry_protocol

# A build is for one PostgreSQL installation: when PG_CONFIG names another (make test goes
# through the majors), the C module and the SQL script (which names the bindir) are rebuilt.
# The stamp's content is the installation; it is rewritten, and so newer, only when that changes.
# (Through a variable, not $(MAKE) in the recipe: `make -n` must not run that line.)
BUILT_FOR = extension/build/built-for
PG_IDENTITY := $(BINDIR_) $(shell $(PG_CONFIG) --version 2>/dev/null) default level $(TELEMETRY_DEFAULT_LEVEL)
CLEAN_MODULE = $(MAKE) -s -C extension clean
.PHONY: FORCE
$(BUILT_FOR): FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(PG_IDENTITY)' ]; then \
		MAKEFLAGS= $(CLEAN_MODULE) PG_CONFIG='$(PG_CONFIG)' && echo '$(PG_IDENTITY)' > $@; \
	fi

# The scripts depend on which SQL files there are, not only on their times: a
# renamed or removed migration rebuilds them too.
SQL_LIST = extension/build/sql-sources
$(SQL_LIST): FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(sort $(SQL_SOURCES))' ]; then echo '$(sort $(SQL_SOURCES))' > $@; fi

BUILD_SQL = $(SERVER_PYTHON) extension/build.py sql --version '$(EXTVERSION)' --sql-dir sql \
	--bindir '$(BINDIR_)' --python-dir '$(PYTHON_DIR)'
SQL_BUILD_INPUTS = $(SQL_SOURCES) $(SQL_LIST) extension/build.py extension/migrations.py telemetry.control $(BUILT_FOR)

extension/build/telemetry--$(EXTVERSION).sql: $(SQL_BUILD_INPUTS)
	$(BUILD_SQL) --out $@
extension/build/telemetry--%--$(EXTVERSION).sql: $(SQL_BUILD_INPUTS)
	$(BUILD_SQL) --from '$*' --out $@

.PHONY: sql-scripts
sql-scripts: $(SQL_SCRIPTS)

# A carried release's tree, exported from its release commit.  Outside a git
# checkout it must be there already (`make deb` exports them into its copy).
$(RELEASE_TREES)/%/telemetry.control:
	@git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "telemetry: $(@D) is missing and" \
		"this is not a git checkout: run 'make release-trees' in one and copy $(RELEASE_TREES)," \
		"or build without the earlier releases: make CARRIED_RELEASES=" >&2; exit 1; }
	@commit=$$(sed -n 's/^$* \([0-9a-f]*\)$$/\1/p' $(RELEASE_COMMITS)); \
	[ -n "$$commit" ] || { echo "telemetry: no commit for release $* in $(RELEASE_COMMITS)" >&2; exit 1; }; \
	rm -rf $(@D) && mkdir -p $(@D) && git archive "$$commit" | tar -x -C $(@D)
	@grep -q "^default_version = '$*'" $@ || { echo "telemetry: the commit of $* is not that release" >&2; exit 1; }
	touch $@
.PHONY: release-trees
release-trees: $(foreach release,$(CARRIED_RELEASES),$(RELEASE_TREES)/$(release)/telemetry.control)

# A release's pinned packages: a copy of ours (installed from hashes) when it pinned the
# same versions (else its own Makefile fetches them).
PINS = grep -oE '^[A-Za-z0-9._-]+==[^ \\]+' $(1) | tr A-Z a-z | sort
$(RELEASE_TREES)/%/python/build/deps/.stamp: $(SERVER_DEPS_STAMP) | $(RELEASE_TREES)/%/telemetry.control
	if [ "$$($(call PINS,python/requirements-server.txt))" = \
		"$$($(call PINS,$(RELEASE_TREES)/$*/python/requirements-server.txt))" ]; then \
		rm -rf $(@D) && mkdir -p $(dir $(@D)) && cp -r python/build/deps $(@D) && touch $@; fi
CARRIED_DEPS = $(if $(SERVER_DEPS_STAMP),$(foreach release,$(CARRIED_RELEASES),$(RELEASE_TREES)/$(release)/python/build/deps/.stamp))

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
.PHONY: python/build/telemetry_extension/_build.py
python/build/telemetry_extension/_build.py:
	rm -rf $(addprefix python/build/,$(PY_PACKAGES))
	mkdir -p python/build
	cp -r $(addprefix python/,$(PY_PACKAGES)) python/build/
	find $(addprefix python/build/,$(PY_PACKAGES)) -name __pycache__ -prune -exec rm -rf {} +
	$(SERVER_PYTHON) extension/build.py build-info --out $@ --version '$(EXTVERSION)' \
		--install-method '$(INSTALL_METHOD)' --build-os-name '$(BUILD_OS_NAME)' \
		--build-os-version '$(BUILD_OS_VERSION)' --endpoint '$(TELEMETRY_ENDPOINT)' \
		--default-level '$(TELEMETRY_DEFAULT_LEVEL)'

all: module $(SERVER_DEPS_STAMP) python/build/telemetry_extension/_build.py $(CARRIED_DEPS)

install: install-module install-python
# PGXS's own uninstall removes the control file and the scripts; these, the rest.
uninstall: uninstall-module uninstall-python
clean: clean-module
.PHONY: module install-module clean-module install-python uninstall-module uninstall-python
module: $(BUILT_FOR)
	$(MAKE) -C extension PG_CONFIG='$(PG_CONFIG)' TELEMETRY_DEFAULT_LEVEL='$(TELEMETRY_DEFAULT_LEVEL)'
install-module: module
	$(MAKE) -C extension install PG_CONFIG='$(PG_CONFIG)' TELEMETRY_DEFAULT_LEVEL='$(TELEMETRY_DEFAULT_LEVEL)'
clean-module:
	$(MAKE) -C extension clean PG_CONFIG='$(PG_CONFIG)'

uninstall-module:
	$(MAKE) -C extension uninstall PG_CONFIG='$(PG_CONFIG)'
# Every version's Python package: this one's and the carried releases'.
uninstall-python:
	rm -rf '$(DESTDIR)$(PKGLIBDIR_)/telemetry'

install-python: $(SERVER_DEPS_STAMP) python/build/telemetry_extension/_build.py release-trees $(CARRIED_DEPS)
	rm -rf '$(DESTDIR)$(PYTHON_DIR)'
	$(MKDIR_P) '$(DESTDIR)$(PYTHON_DIR)'
	cp -r $(if $(SERVER_DEPS_STAMP),python/build/deps/.) $(addprefix python/build/,$(PY_PACKAGES)) '$(DESTDIR)$(PYTHON_DIR)/'
	rm -f '$(DESTDIR)$(PYTHON_DIR)/.stamp'
	+@for release in $(CARRIED_RELEASES); do \
		$(MAKE) --no-print-directory -C $(RELEASE_TREES)/$$release install-python PG_CONFIG='$(PG_CONFIG)' || exit 1; \
	done

# ---- for people and CI -----------------------------------------------------
# The PostgreSQL majors we support: `make test` runs the whole suite on each, in this order.
# This is the one place they are listed (the README and tests/extension/test_majors.py read it).
# `make test PG_MAJORS=15` for a quick loop on one.
PG_MAJORS = 15 17 18
# Prints the pg_config of a major, installing (15: Debian packages) or building and caching
# (17, 18: Debian source packages) it first when needed.
PROVIDE_POSTGRES = tools/provide-postgres

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV ?= .venv
DEBIAN_PACKAGES = python3-pip python3-venv gcc make chromium wrk

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

# The lock files, with every transitive package and its hashes, from their sources (*.in).
LOCK = $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links
.PHONY: lock
lock: $(VENV)/.stamp
	$(LOCK) --output-file requirements-dev.txt requirements-dev.in
	$(LOCK) --output-file python/requirements-server.txt python/requirements-server.in
	$(LOCK) --output-file python/requirements-collector.lock python/requirements-collector-install.in

$(VENV)/.stamp: requirements-dev.txt
	$(SERVER_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

demo: deps
	$(MAKE) all
	$(SUDO) $(MAKE) install
	$(VENV)/bin/python -m demo

# Each major in turn, every one even when an earlier one fails; the tests that do not depend on
# the major (the collector's, the build tools') once; a summary line per run at the end.
test: deps
	@PG_MAJORS='$(PG_MAJORS)' PYTEST_ARGS='$(PYTEST_ARGS)' PYTHON='$(VENV)/bin/python' \
		PROVIDE_POSTGRES='$(PROVIDE_POSTGRES)' MAKE='$(MAKE)' tools/run-tests

# Needs the virtualenv only: no root, no PostgreSQL, nothing from apt.  The settings (and
# mypy's list of files) are in pyproject.toml.
lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check python tests extension bench demo
	$(VENV)/bin/ruff format --check python tests extension bench demo
	$(VENV)/bin/mypy
	$(VENV)/bin/python extension/lint_sql.py --version '$(EXTVERSION)' --sql-dir sql

# ---- pg_regress on a temporary instance, and the Debian package ---------------
# `make check`: the regression tests on a temporary instance with telemetry
# preloaded (tests/regress/preload.conf), started from a private copy of this server's
# installation with the extension installed into it (tests/pgtree.py), so
# nothing goes into the system.  As root, the instance runs as postgres.
REGRESS_TMP    = tmp_check
SERVER_OS_USER = $(if $(SUDO),$(shell id -un),postgres)
AS_SERVER_USER = $(if $(SUDO),,runuser -u $(SERVER_OS_USER) --)
.PHONY: check deb deb-deps
# Only when asked for: PGXS has a `check` that says "not supported", and make
# warns when a recipe replaces it.
ifneq ($(filter check,$(MAKECMDGOALS)),)
check: all
	rm -rf $(REGRESS_TMP) && mkdir -p $(REGRESS_TMP)
	bindir=$$(PG_CONFIG='$(PG_CONFIG)' $(SERVER_PYTHON) -c 'import sys; from pathlib import Path; \
		from tests.pgtree import build_tree; print(build_tree(Path(sys.argv[1])).bindir)' $(CURDIR)/$(REGRESS_TMP)/tree) && \
	chown -R $(SERVER_OS_USER) $(REGRESS_TMP) && \
	$(AS_SERVER_USER) $(top_builddir)/src/test/regress/pg_regress $(REGRESS_OPTS) --bindir="$$bindir" \
		--outputdir=$(REGRESS_TMP) --temp-instance=$(REGRESS_TMP)/instance --temp-config=tests/regress/preload.conf \
		$(REGRESS) || { cat $(REGRESS_TMP)/regression.diffs; exit 1; }
endif

# `make deb`: postgresql-<major>-telemetry for each major in debian/pgversions that
# Debian's postgresql-server-dev-<major> is installed for, built by debhelper and
# pg_buildext from a copy of this checkout (tracked and new files, and the carried
# releases' trees exported from their commits) in $(DEB_DIR); the .deb files land there,
# checked by lintian (an error fails the build).  Offline: the package uses Debian's
# python3-requests and python3-packaging (SERVER_PYTHON_DEPS=system, see debian/rules).
DEB_DIR      ?= build/deb
DEB_REVISION ?= 1
DEB_SRC       = $(DEB_DIR)/telemetry-$(EXTVERSION)
deb-deps:
	$(MAKE) debian-deps DEBIAN_PACKAGES='debhelper postgresql-server-dev-all python3 dpkg-dev lintian'
deb: deb-deps
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_SRC)
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C $(DEB_SRC)
	$(MAKE) --no-print-directory release-trees RELEASE_TREES='$(DEB_SRC)/$(RELEASE_TREES)'
	cd $(DEB_SRC) && printf '%s\n' \
		'telemetry ($(EXTVERSION)-$(DEB_REVISION)) unstable; urgency=medium' '' \
		'  * Built from the checkout: $(shell git describe --always --dirty 2>/dev/null || echo unknown).' '' \
		" -- The telemetry authors <maintainers@telemetry.invalid>  $$(date -R)" > debian/changelog && \
		pg_buildext updatecontrol && \
		dpkg-buildpackage --build=binary --no-sign
	@ls -1 $(DEB_DIR)/*.deb
	lintian --fail-on error $$(ls $(DEB_DIR)/*.deb | grep -v -- '-dbgsym_')
