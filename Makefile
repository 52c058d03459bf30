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
#   make install PREFIX=/usr/local
#
# Every target that compiles first runs `make deps` (tools/deps.sh), which is a
# no-op when the Debian packages are present.  The real work happens in a
# sub-make so pkg-config runs only after the packages exist.

PREFIX  ?= /usr/local
BUILD   ?= build
PKGS     = sqlite3 libsodium libcjson openssl libcurl libmicrohttpd
OPT     ?= -O2 -g

.PHONY: all deps test asan valgrind run bench install clean fuzz crash _all
all: deps
	@$(MAKE) --no-print-directory _all

deps:
	@tools/deps.sh

ifneq ($(filter _%,$(MAKECMDGOALS)),)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
endif

CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -fPIC \
             -Iinclude -Isrc -Isync -I$(BUILD) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lpthread -lm $(EXTRA_LDFLAGS)

# Command-line modules (main.c, cli.c, serve.c, cmd_*.c) go into the binary only.
CLI_SRC  = src/main.c src/cli.c $(wildcard src/serve.c src/cmd_*.c)
LIB_SRC  = $(filter-out $(CLI_SRC),$(wildcard src/*.c)) $(wildcard sync/*.c)
LIB_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(BUILD)/schema_gen.o
TEST_SRC = tests/runner.c $(wildcard tests/test_*.c)
TEST_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(TEST_SRC))
SCHEMA   = $(sort $(wildcard schema/*.sql))
VERSION  = 0.1.0

_all: $(BUILD)/libtenantry.a $(BUILD)/libtenantry.so $(BUILD)/tenantry $(BUILD)/unit \
      $(BUILD)/bench_store

$(BUILD)/schema_gen.c: $(SCHEMA) tools/embed_schema.sh
	@mkdir -p $(@D)
	tools/embed_schema.sh $@ $(SCHEMA)

$(BUILD)/%.o: %.c $(wildcard include/*.h src/*.h sync/*.h tests/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/schema_gen.o: $(BUILD)/schema_gen.c src/schema.h
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/libtenantry.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libtenantry.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libtenantry.so.0 -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tenantry: $(patsubst %.c,$(BUILD)/%.o,$(CLI_SRC)) $(BUILD)/libtenantry.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/unit: $(TEST_OBJ) $(BUILD)/libtenantry.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bench_store: $(BUILD)/bench/store.o $(BUILD)/libtenantry.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

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
# happens in (each test is a forked child that exits 99).
valgrind: deps
	@command -v valgrind >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
	@$(MAKE) --no-print-directory _all
	@valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
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
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(BUILD)/tenantry $(DESTDIR)$(PREFIX)/bin/tenantry
	install -m 0644 $(BUILD)/libtenantry.a $(DESTDIR)$(PREFIX)/lib/libtenantry.a
	install -m 0755 $(BUILD)/libtenantry.so $(DESTDIR)$(PREFIX)/lib/libtenantry.so.$(VERSION)
	ln -sf libtenantry.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libtenantry.so.0
	ln -sf libtenantry.so.0 $(DESTDIR)$(PREFIX)/lib/libtenantry.so
	install -m 0644 include/tenantry.h $(DESTDIR)$(PREFIX)/include/tenantry.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' tools/tenantry.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tenantry.pc

clean:
	rm -rf build build-asan
