# Kite: one non-recursive GNU make build.
#
# Layout conventions (no per-program Makefile edits needed):
#   lib/*.c                -> $(BUILD)/libkite.a
#   <daemon>/*.c           -> $(BUILD)/libexec/<daemon>   (daemon dirs below)
#   cmd/<name>/*.c         -> $(BUILD)/bin/<name>
#   tests/unit/test_*.c    -> $(BUILD)/tests/test_*       (cmocka)
#   fuzz/fuzz_*.c          -> $(BUILD)/fuzz/fuzz_*        (libFuzzer, `make fuzz`)
#
# `make SAN=1` builds everything with ASan+UBSan into build-san/.

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/kite
CONFDIR    ?= $(PREFIX)/etc/kite
QUEUEDIR   ?= /var/spool/kite
DATADIR    ?= /var/lib/kite
MANDIR     ?= $(PREFIX)/share/man
DESTDIR    ?=
SETGID_GROUP ?= kitedrop

PKGS := openssl libpcre2-8

SAN ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-san
OPT     := -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SANLD   := -fsanitize=address,undefined
else
BUILD   ?= build
OPT     := -O2 -D_FORTIFY_SOURCE=2
SANLD   :=
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CC       ?= cc
CFLAGS   ?=
WARN     := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wno-unused-parameter
HARDEN   := -fstack-protector-strong -fPIE
DEFS     := -D_GNU_SOURCE \
            -DKITE_DEF_CONFIG_DIR='"$(CONFDIR)"' \
            -DKITE_DEF_DAEMON_DIR='"$(LIBEXECDIR)"' \
            -DKITE_DEF_COMMAND_DIR='"$(SBINDIR)"' \
            -DKITE_DEF_QUEUE_DIR='"$(QUEUEDIR)"' \
            -DKITE_DEF_DATA_DIR='"$(DATADIR)"'
ALL_CFLAGS  := -std=c11 $(WARN) $(OPT) -g $(HARDEN) $(DEFS) -Iinclude $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
ALL_LDFLAGS := -pie -Wl,-z,relro,-z,now $(SANLD) $(LDFLAGS)
LIBS        := $(PKG_LIBS) -ldb -lcrypt -lresolv

DAEMON_DIRS := master smtpd smtp qmgr local cleanup pickup bounce showq anvil
DAEMONS     := $(foreach d,$(DAEMON_DIRS),$(if $(wildcard $(d)/*.c),$(d)))
COMMANDS    := $(patsubst cmd/%/,%,$(sort $(dir $(wildcard cmd/*/*.c))))
UNIT_TESTS  := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
FUZZERS     := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))

LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIBKITE  := $(BUILD)/libkite.a

DAEMON_BINS  := $(DAEMONS:%=$(BUILD)/libexec/%)
COMMAND_BINS := $(COMMANDS:%=$(BUILD)/bin/%)
TEST_BINS    := $(UNIT_TESTS:%=$(BUILD)/tests/%)

.SECONDARY:
.PHONY: all deps test unit-test unit-test-san integration-test run stop clean install fuzz bench format check-format
.DEFAULT_GOAL := all

all: $(LIBKITE) $(DAEMON_BINS) $(COMMAND_BINS) $(BUILD)/bin/mailq $(BUILD)/bin/newaliases

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBKITE): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

define daemon_rule
$(BUILD)/libexec/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(1)/*.c)) $(LIBKITE)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIBKITE) $$(LIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rule,$(d))))

define command_rule
$(BUILD)/bin/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cmd/$(1)/*.c)) $(LIBKITE)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIBKITE) $$(LIBS)
endef
$(foreach c,$(COMMANDS),$(eval $(call command_rule,$(c))))

# mailq and newaliases are the sendmail binary under other names.
$(BUILD)/bin/mailq $(BUILD)/bin/newaliases: | $(BUILD)/bin
	@if [ -e $(BUILD)/bin/sendmail ] || [ -d cmd/sendmail ]; then ln -sf sendmail $@; fi
$(BUILD)/bin:
	@mkdir -p $@

# A unit test named test_<daemon>_*.c also links that daemon's objects
# (all but main.o), so daemon-internal modules can be tested directly.
test_daemon = $(firstword $(foreach d,$(DAEMONS),$(if $(filter test_$(d)_%,$(1)),$(d))))
daemon_objs = $(if $(1),$(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out $(1)/main.c,$(wildcard $(1)/*.c))))

.SECONDEXPANSION:
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $$(call daemon_objs,$$(call test_daemon,$$*)) $(LIBKITE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(LIBKITE) $(LIBS) -lcmocka

# ---- tests -----------------------------------------------------------------

deps:
	@sh scripts/deps

unit-test: all $(TEST_BINS)
	@sh tests/run-unit $(BUILD) $(UNIT_TESTS)

unit-test-san:
	$(MAKE) SAN=1 unit-test

# Small daemons built on the skeleton, used only by the integration tests.
TEST_DAEMONS := $(patsubst tests/daemon/%.c,$(BUILD)/tests/daemon/%,$(wildcard tests/daemon/*.c))
$(BUILD)/tests/daemon/%: $(BUILD)/obj/tests/daemon/%.o $(LIBKITE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBKITE) $(LIBS)

integration-test: all $(TEST_DAEMONS)
	cd tests/integration && KITE_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) .

JOBS ?= $(shell nproc 2>/dev/null || echo 2)

test:
	@sh scripts/deps test
	$(MAKE) -j$(JOBS) all
	$(MAKE) -j$(JOBS) unit-test
	$(MAKE) -j$(JOBS) unit-test-san
	$(MAKE) integration-test

# ---- sandbox instance --------------------------------------------------------

run: deps
	$(MAKE) -j$(JOBS) all
	@sh scripts/run-sandbox $(abspath $(BUILD)) $(abspath run)

stop:
	@if [ -x $(BUILD)/bin/kite ] && [ -d run/etc ]; then $(BUILD)/bin/kite -c $(abspath run/etc) stop; fi

# ---- fuzzing (clang libFuzzer; not part of CI) -----------------------------

FUZZ_BUILD := build-fuzz
FUZZ_CFLAGS := -std=c11 -g -O1 -fsanitize=fuzzer-no-link,address,undefined $(DEFS) -Iinclude $(PKG_CFLAGS)
fuzz:
	@mkdir -p $(FUZZ_BUILD)
	@for f in $(FUZZERS); do \
	  echo "fuzz: $$f"; \
	  clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $(FUZZ_BUILD)/$$f fuzz/$$f.c $(LIB_SRCS) $(LIBS) || exit 1; \
	done

# ---- benchmark ---------------------------------------------------------------

bench: all
	@sh bench/run $(if $(QUICK),--quick)

# ---- install -----------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(CONFDIR)
	for d in $(DAEMONS); do install -m 0755 $(BUILD)/libexec/$$d $(DESTDIR)$(LIBEXECDIR)/$$d; done
	for c in $(COMMANDS); do \
	  case $$c in kitedrop|kitequeue) install -g $(SETGID_GROUP) -m 2755 $(BUILD)/bin/$$c $(DESTDIR)$(SBINDIR)/$$c ;; \
	              *) install -m 0755 $(BUILD)/bin/$$c $(DESTDIR)$(SBINDIR)/$$c ;; esac; \
	done
	if [ -e $(DESTDIR)$(SBINDIR)/sendmail ]; then \
	  ln -sf $(SBINDIR)/sendmail $(DESTDIR)$(BINDIR)/mailq; \
	  ln -sf $(SBINDIR)/sendmail $(DESTDIR)$(BINDIR)/newaliases; \
	fi
	for f in conf/*; do \
	  b=$$(basename $$f); \
	  if [ -e $(DESTDIR)$(CONFDIR)/$$b ]; then install -m 0644 $$f $(DESTDIR)$(CONFDIR)/$$b.sample; \
	  else install -m 0644 $$f $(DESTDIR)$(CONFDIR)/$$b; fi; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	@clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
