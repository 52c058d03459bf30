# tenantry - build, test, run.
#
#   make            static + shared library and the tenantry CLI (build/)
#   make test       installs missing packages, builds, runs every suite
#   make asan       every suite again under AddressSanitizer + UBSan
#   make valgrind   the unit tests under valgrind memcheck
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (default 30)
#   make crash      the crash-cycle driver: SIGKILL during writes and sync, CRASH_CYCLES (50)
#   make run        builds, creates ./data on first run, starts the main job
#   make bench      the benchmarks in bench/ (not tests); BENCH_RUNS=N, BENCH_QUICK=1
#   make install PREFIX=/usr/local   (DESTDIR, BINDIR, LIBDIR, MANDIR, UNITDIR too)
#   make deb        a Debian package (build/tenantry_VERSION_ARCH.deb)
#
# Every target that compiles first runs `make deps` (tools/deps.sh), which is a
# no-op when the Debian packages are present.  The real work happens in a
# sub-make so pkg-config runs only after the packages exist.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
BUILD   ?= build
PKGS     = sqlite3 libsodium libcjson openssl libcurl libmicrohttpd
OPT     ?= -O2 -g

.PHONY: all deps test asan valgrind run bench install deb clean fuzz crash _all
all: deps
	@$(MAKE) --no-print-directory _all

deps:
	@tools/deps.sh

ifneq ($(filter _%,$(MAKECMDGOALS)),)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
# The binary maps libcurl and libcrypto only when it syncs (src/cli/lazylib.c
# opens them by these sonames, the ones the library is built against).
BIN_LIBS   := $(shell pkg-config --libs $(filter-out libcurl openssl,$(PKGS)))
soname      = $(shell objdump -p $(shell pkg-config --variable=libdir $(1))/$(1).so 2>/dev/null | \
                sed -n 's/^ *SONAME *//p')
CURL_SONAME   := $(call soname,libcurl)
CRYPTO_SONAME := $(call soname,libcrypto)
endif

# Layers, lowest first.  Each folder compiles with only the include paths it
# may use, so a file cannot include a header of a higher layer; the layer
# check (tools/layers.py, a suite of `make test`) also refuses another
# folder's private header (*_int.h).
#
#   src/base    crypto, JSON check, buffers, clocks, token buckets (no tenantry deps)
#   src/store   the store: sessions, guard, clock, group commit, schema, outbox
#   src/auth    keys, operators, tokens, settings        (base, store)
#   sync        the remote-agnostic engine and the remote interface (base, store)
#   sync/aws    DynamoDB + S3 backend                     (base, sync/remote.h)
#   sync/dir    directory backend                         (base, sync/remote.h)
#   src/api     HTTP server, router, one file per resource (base, store, auth, sync)
#   src/cli     the tenantry command: one file per command (everything)
INC_base  = -Isrc/base
INC_store = -Iinclude -Isrc/base -Isrc/store
INC_auth  = $(INC_store) -Isrc/auth
INC_sync  = $(INC_store) -Isync
INC_aws   = -Iinclude -Isrc/base -Isync -Isync/aws
INC_dir   = -Iinclude -Isrc/base -Isync -Isync/dir
INC_api   = $(INC_store) -Isrc/auth -Isync -Isrc/api
INC_cli   = $(INC_api) -Isync/aws -Isync/dir -Isrc/cli
INC_all   = $(INC_cli) -I$(BUILD)

CFLAGS_BASE = -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -fPIC -MMD -MP \
              $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lpthread -lm $(EXTRA_LDFLAGS)
# The embedded store alone: what a program linking libtenantry needs.
LIB_PKGS   = sqlite3 libsodium
ifneq ($(filter _%,$(MAKECMDGOALS)),)
LDLIBS_LIB := $(shell pkg-config --libs $(LIB_PKGS)) -lpthread -lm $(EXTRA_LDFLAGS)
endif

BASE_SRC  = $(wildcard src/base/*.c)
STORE_SRC = $(wildcard src/store/*.c)
AUTH_SRC  = $(wildcard src/auth/*.c)
SYNC_SRC  = $(wildcard sync/*.c)
AWS_SRC   = $(wildcard sync/aws/*.c)
DIR_SRC   = $(wildcard sync/dir/*.c)
API_SRC   = $(wildcard src/api/*.c)
CLI_SRC   = $(wildcard src/cli/*.c)
obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

# libtenantry: the embedded store (base + store + the schema), nothing else.
LIB_OBJ  = $(call obj,$(BASE_SRC) $(STORE_SRC)) $(BUILD)/schema_gen.o
# Everything above the store: credentials, sync and its backends, HTTP.
UP_OBJ   = $(call obj,$(AUTH_SRC) $(SYNC_SRC) $(AWS_SRC) $(DIR_SRC) $(API_SRC))
CLI_OBJ  = $(call obj,$(CLI_SRC))
TEST_SRC = tests/runner.c $(wildcard tests/test_*.c)
TEST_OBJ = $(call obj,$(TEST_SRC))
SCHEMA   = $(sort $(wildcard schema/*.sql))
VERSION  = 0.1.0

_all: $(BUILD)/libtenantry.a $(BUILD)/libtenantry.so $(BUILD)/libtenantry-full.a \
      $(BUILD)/tenantry $(BUILD)/unit $(BUILD)/bench_store $(BUILD)/bench_remote_dir \
      $(BUILD)/linkem $(BUILD)/man/tenantry.1

$(BUILD)/schema_gen.c: $(SCHEMA) tools/embed_schema.sh
	@mkdir -p $(@D)
	tools/embed_schema.sh $@ $(SCHEMA)

$(BUILD)/src/base/%.o:  INC = $(INC_base)
$(BUILD)/src/store/%.o: INC = $(INC_store)
$(BUILD)/src/auth/%.o:  INC = $(INC_auth)
$(BUILD)/sync/%.o:      INC = $(INC_sync)
$(BUILD)/sync/aws/%.o:  INC = $(INC_aws)
$(BUILD)/sync/dir/%.o:  INC = $(INC_dir)
$(BUILD)/src/api/%.o:   INC = $(INC_api)
$(BUILD)/src/cli/%.o:   INC = $(INC_cli)
$(BUILD)/tests/%.o:     INC = $(INC_all) -Itests
$(BUILD)/bench/%.o:     INC = $(INC_store)
$(BUILD)/bench/remote_dir.o: INC = $(INC_dir)

$(BUILD)/src/cli/lazylib.o: DEFS = $(if $(CURL_SONAME),-DTN_LIBCURL_SONAME='"$(CURL_SONAME)"') \
                                   $(if $(CRYPTO_SONAME),-DTN_LIBCRYPTO_SONAME='"$(CRYPTO_SONAME)"')
$(BUILD)/src/cli/main.o: DEFS = -DTENANTRY_VERSION='"$(VERSION)"'

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) $(INC) $(DEFS) -c -o $@ $<

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

$(BUILD)/schema_gen.o: $(BUILD)/schema_gen.c src/store/schema.h
	$(CC) $(CFLAGS_BASE) $(INC_store) -c -o $@ $<

$(BUILD)/libtenantry.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libtenantry.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libtenantry.so.0 -o $@ $^ $(LDLIBS_LIB)

# The layers above the store, for the binary, the tests and the fuzzers.
$(BUILD)/libtenantry-full.a: $(LIB_OBJ) $(UP_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The binary links neither libcurl nor libcrypto: lazylib.c loads them when
# sync first needs them (idle memory: docs/operations.md).
$(BUILD)/tenantry: $(CLI_OBJ) $(BUILD)/libtenantry-full.a
	$(CC) -o $@ $^ $(BIN_LIBS) -ldl -lpthread -lm $(EXTRA_LDFLAGS)

# The manual pages, from the binary's --help texts (tenantry.1 is written last).
$(BUILD)/man/tenantry.1: $(BUILD)/tenantry tools/mkman.sh
	tools/mkman.sh $(BUILD)/tenantry $(BUILD)/man $(VERSION)

UNIT_CLI = $(filter-out $(BUILD)/src/cli/main.o $(BUILD)/src/cli/lazylib.o,$(CLI_OBJ))
$(BUILD)/unit: $(TEST_OBJ) $(UNIT_CLI) $(BUILD)/libtenantry-full.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bench_store: $(BUILD)/bench/store.o $(BUILD)/libtenantry.a
	$(CC) -o $@ $^ $(LDLIBS_LIB)

$(BUILD)/bench_remote_dir: $(BUILD)/bench/remote_dir.o $(BUILD)/libtenantry-full.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

# The benchmarks' link emulator: stand-alone, no library.
$(BUILD)/linkem: bench/linkem.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -o $@ $< $(EXTRA_LDFLAGS)

# The whole suite: C unit tests, then the end-to-end suites in tests/*.sh|py.
test: deps
	@tools/deps.sh --test
	@$(MAKE) --no-print-directory _all
	@tests/run.sh $(BUILD)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer \
	  -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" _all
	@ASAN_OPTIONS=detect_leaks=1 tests/run.sh build-asan

# The unit tests under valgrind memcheck: any error or leak fails the test it
# happens in (each test is a forked child that exits 99).  valgrind runs one
# thread at a time; --fair-sched=yes hands the CPU round, so a test that
# watches another thread (a console holding the write lock) is not starved.
valgrind: deps
	@command -v valgrind >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
	@$(MAKE) --no-print-directory _all
	@valgrind --quiet --fair-sched=yes --leak-check=full --errors-for-leak-kinds=definite,indirect \
	  --error-exitcode=99 $(BUILD)/unit

# libFuzzer targets (tests/fuzz/), each for FUZZ_SECONDS (default 30) from a
# copy of the committed seed corpus.
fuzz: deps
	@tools/deps.sh --fuzz
	@tools/fuzz.sh

# The crash-cycle driver (tests/crash/crash.py): the daemon with sync on against
# moto_server, killed with SIGKILL CRASH_CYCLES times; a short run is in `make test`.
CRASH_CYCLES ?= 50
crash: deps
	@tools/deps.sh --test
	@$(MAKE) --no-print-directory _all
	@TN_BUILD=$(BUILD) python3 tests/crash/crash.py --cycles $(CRASH_CYCLES) $(if $(CRASH_SEED),--seed $(CRASH_SEED))

run: all
	@tools/run.sh $(BUILD)/tenantry data

bench: deps
	@tools/deps.sh --bench
	@$(MAKE) --no-print-directory _all
	@bench/run.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BUILD)/tenantry $(DESTDIR)$(BINDIR)/tenantry
	install -m 0644 $(BUILD)/libtenantry.a $(DESTDIR)$(LIBDIR)/libtenantry.a
	install -m 0755 $(BUILD)/libtenantry.so $(DESTDIR)$(LIBDIR)/libtenantry.so.$(VERSION)
	ln -sf libtenantry.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libtenantry.so.0
	ln -sf libtenantry.so.0 $(DESTDIR)$(LIBDIR)/libtenantry.so
	install -m 0644 include/tenantry.h $(DESTDIR)$(INCLUDEDIR)/tenantry.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	  -e 's|@VERSION@|$(VERSION)|' -e 's|@LIB_PKGS@|$(LIB_PKGS)|' tools/tenantry.pc.in \
	  > $(DESTDIR)$(LIBDIR)/pkgconfig/tenantry.pc
	install -m 0644 $(BUILD)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	for u in dist/systemd/*.service dist/systemd/*.timer; do \
	  sed 's|/usr/bin/tenantry|$(BINDIR)/tenantry|g' $$u > $(DESTDIR)$(UNITDIR)/$${u##*/} && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done

# A Debian package of all of the above plus the system user (tools/mkdeb.sh).
deb: all
	@tools/mkdeb.sh $(BUILD) $(VERSION)

clean:
	rm -rf build build-asan
