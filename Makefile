# pixflow: developer build. LuaRocks uses rockspec/pixflow-scm-1.rockspec, not this file.
PKG_CONFIG ?= pkg-config
LUA        ?= lua5.4
LUA_PC     ?= lua5.4
CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       ?= -Wall -Wextra -Wmissing-prototypes -Wshadow -Wstrict-prototypes -Wno-unused-parameter
STD        := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
LIBFLAG    ?= -shared

LUA_CFLAGS  = $(shell $(PKG_CONFIG) --cflags $(LUA_PC) 2>/dev/null)
DEP_CFLAGS  = $(shell $(PKG_CONFIG) --cflags libcurl jansson libcrypto sqlite3 2>/dev/null)
DEP_LIBS    = $(shell $(PKG_CONFIG) --libs libcurl jansson libcrypto sqlite3 2>/dev/null) -lpthread
MHD_CFLAGS  = $(shell $(PKG_CONFIG) --cflags libmicrohttpd jansson 2>/dev/null)
MHD_LIBS    = $(shell $(PKG_CONFIG) --libs libmicrohttpd jansson 2>/dev/null) -lpthread -lm

# The engine (csrc/engine, csrc/adapters: no Lua) and its Lua binding (csrc/lua) make pixflow.core;
# the engine alone is also build/libpixflow.a, which C hosts link (examples/c/generate.c).
ENGINE_SRCS := $(wildcard csrc/engine/*.c csrc/adapters/*.c)
BINDING_SRCS := $(wildcard csrc/lua/*.c)
CORE_SRCS := $(ENGINE_SRCS) $(BINDING_SRCS)
CORE_HDRS := $(wildcard csrc/engine/*.h csrc/adapters/*.h csrc/lua/*.h)
INC       := -Icsrc -Icsrc/engine
SBX_SRCS  := $(wildcard sandbox/*.c)
SBX_HDRS  := $(wildcard sandbox/*.h)
CLIP      := spec/fixtures/clip.mp4

BUSTED    ?= busted
SPECS     ?= spec

.PHONY: fuzz-deps all deps test test-live demo examples clean fuzz fuzz-build fuzz-smoke soak test-allocfail test-asan test-valgrind test-helgrind \
        bench bench-smoke

all: build/pixflow/core.so build/pixflow-sandbox build/pixflow/sandbox.so build/libpixflow.a

deps:
	@sh scripts/deps.sh

# Each file is compiled alone (build/obj/<path>.o): spec/layers_spec.lua reads their symbols to
# check the layers (no Lua below the binding, no cycle of calls between files).
ENGINE_OBJS  := $(ENGINE_SRCS:%.c=build/obj/%.o)
BINDING_OBJS := $(BINDING_SRCS:%.c=build/obj/%.o)
build/obj/csrc/lua/%.o: csrc/lua/%.c $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(STD) -fPIC -fvisibility=hidden $(INC) $(LUA_CFLAGS) $(DEP_CFLAGS) -c -o $@ $<

build/obj/%.o: %.c $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(STD) -fPIC -fvisibility=hidden $(INC) $(DEP_CFLAGS) -c -o $@ $<

build/pixflow/core.so: $(ENGINE_OBJS) $(BINDING_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LIBFLAG) -o $@ $(ENGINE_OBJS) $(BINDING_OBJS) $(DEP_LIBS)

# The engine alone, for C hosts: a static library of csrc/engine and csrc/adapters (no Lua).
build/libpixflow.a: $(ENGINE_OBJS)
	rm -f $@ && ar rcs $@ $(ENGINE_OBJS)

# The sandbox, twice from the same sources: the executable, and the Lua C module pixflow.sandbox
# (what `pixflow sandbox` runs; the rockspec builds the same module). sandbox/clip.c embeds $(CLIP).
build/pixflow-sandbox: $(SBX_SRCS) $(SBX_HDRS) $(CLIP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(STD) -Isandbox $(MHD_CFLAGS) -o $@ $(SBX_SRCS) $(MHD_LIBS)

build/pixflow/sandbox.so: $(SBX_SRCS) $(SBX_HDRS) $(CLIP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(STD) -fPIC -fvisibility=hidden -DSBX_MODULE -Isandbox $(LUA_CFLAGS) $(MHD_CFLAGS) \
	  $(LIBFLAG) -o $@ $(SBX_SRCS) $(MHD_LIBS)

# examples/embed/host.c: a C program embedding Lua 5.4 and pixflow (links liblua5.4);
# examples/c/generate.c: a C program driving the engine with no Lua at all.
examples: build/examples/host build/examples/generate

build/examples/generate: examples/c/generate.c build/libpixflow.a $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(STD) $(INC) $(DEP_CFLAGS) -o $@ $< build/libpixflow.a $(DEP_LIBS) -lm

build/examples/host: examples/embed/host.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(STD) $(LUA_CFLAGS) -o $@ $< $(shell $(PKG_CONFIG) --libs $(LUA_PC)) -lm -ldl

# Every test target runs with the journal's directory (XDG_STATE_HOME) and the config file
# (XDG_CONFIG_HOME, PIXFLOW_CONFIG) under build/test-home, never the user's own: a spec that runs
# bin/pixflow without a --journal of its own writes there, and no config of the user's changes a
# spec's providers. (Specs that need a journal of their own still set XDG_STATE_HOME themselves.)
TEST_HOME := $(CURDIR)/build/test-home
TEST_ENV   = XDG_STATE_HOME=$(TEST_HOME)/state XDG_CONFIG_HOME=$(TEST_HOME)/config \
             PIXFLOW_CONFIG=$(TEST_HOME)/config/pixflow/config.lua
TEST_DIRS  = mkdir -p $(TEST_HOME)/state $(TEST_HOME)/config

# The README's test command: installs what is missing, builds, runs every spec.
test: deps all examples
	@$(TEST_DIRS)
	$(TEST_ENV) $(BUSTED) --lua=$(LUA) -o spec/support/summary.lua $(SPECS)

# Opt-in: one real generation per gateway whose key is set (spends credits).
test-live: deps all
	@$(TEST_DIRS)
	$(TEST_ENV) $(BUSTED) --lua=$(LUA) --exclude-tags= --tags=live -o spec/support/summary.lua spec/live_spec.lua

# Starts the sandbox, makes a video with examples/fusion.lua, stops the sandbox.
demo: deps all
	@sh scripts/demo.sh

# Fuzzing (clang's libFuzzer, with ASan and UBSan): one target per adapter's response parsers
# (fuzz/adapter_fuzz.c built once per csrc/adapters/<name>.c) and one per other fuzz/<name>_fuzz.c
# (today the journal's JSONL import). `make fuzz` runs each FUZZ_SECONDS, `make fuzz-smoke` (CI) each
# FUZZ_SMOKE_SECONDS; new inputs go to build/fuzz/corpus, the seeds (fuzz/corpus, made by
# fuzz/seed.sh from the spec fixtures) are read only. Both end "N passed, N failed" (targets).
#
# Why the targets cannot rot: they link no hand-kept list of engine files. Every engine source
# ($(CORE_SRCS), the same wildcard as core.so) is compiled once with the fuzz flags into one
# archive, build/fuzz/libpixflow.a, and each target links its harness against that archive. A
# linker takes from an archive only the members that define a symbol still needed, so a target
# gets its adapter plus exactly what that adapter reaches as the code stands: a new call between
# engine files (retry.c calling pf_client_rand, which broke the old filter-out list) or a new
# engine file (a SQLite journal) needs no edit here. The libraries are core.so's own (DEP_LIBS,
# plus Lua's): a library the core starts to need is added there once and reaches these links too.
# CI builds and runs every target (fuzz-smoke), so a link that breaks anyway breaks CI.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -g -O1 $(FUZZ_SAN) $(STD) $(INC) $(LUA_CFLAGS) $(DEP_CFLAGS)
LUA_LIBS      = $(shell $(PKG_CONFIG) --libs $(LUA_PC))
ADAPTERS     := $(filter-out common proto registry,$(basename $(notdir $(wildcard csrc/adapters/*.c))))
FUZZ_OTHERS  := $(patsubst fuzz/%_fuzz.c,%,$(filter-out fuzz/adapter_fuzz.c,$(wildcard fuzz/*_fuzz.c)))
FUZZ_TARGETS := $(ADAPTERS) $(FUZZ_OTHERS)
FUZZ_OBJS    := $(CORE_SRCS:%.c=build/fuzz/obj/%.o)

fuzz-build: $(FUZZ_TARGETS:%=build/fuzz/%_fuzz) build/pixflow/core.so
$(FUZZ_TARGETS:%=build/fuzz/%_fuzz) $(FUZZ_OBJS): | fuzz-deps
fuzz-deps:
	@sh scripts/deps.sh clang libclang-rt-dev

build/fuzz/obj/%.o: %.c $(CORE_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/libpixflow.a: $(FUZZ_OBJS)
	rm -f $@ && ar rcs $@ $(FUZZ_OBJS)

$(ADAPTERS:%=build/fuzz/%_fuzz): build/fuzz/%_fuzz: fuzz/adapter_fuzz.c build/fuzz/libpixflow.a $(CORE_HDRS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DPF_FUZZ_ADAPTER=pf_adapter_$* -o $@ \
	  fuzz/adapter_fuzz.c build/fuzz/libpixflow.a $(DEP_LIBS) $(LUA_LIBS) -lm -ldl

# -Wl,-E: a harness that runs Lua code exports the Lua API to the C modules that code loads
$(FUZZ_OTHERS:%=build/fuzz/%_fuzz): build/fuzz/%_fuzz: fuzz/%_fuzz.c build/fuzz/libpixflow.a $(CORE_HDRS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ \
	  $< build/fuzz/libpixflow.a $(DEP_LIBS) $(LUA_LIBS) -lm -ldl -Wl,-E

fuzz: fuzz-build
	@sh scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	@sh scripts/fuzz.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# The whole suite again with the C core, the sandbox and the embedding example built with
# AddressSanitizer and UndefinedBehaviorSanitizer, in a copy of the checkout (build/asan-tree) so
# that the normal build is left alone. Every process of the suite gets the ASan runtime; any
# sanitizer report (written under build/asan-tree/reports) fails the target.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-asan: deps
	@rm -rf build/asan-tree && mkdir -p build/asan-tree/reports
	@cp -r .busted Makefile README.md bin csrc lua sandbox scripts spec examples rockspec docs build/asan-tree/
	cd build/asan-tree && $(MAKE) --no-print-directory all examples CFLAGS="$(SAN_FLAGS)"
	@$(TEST_DIRS)
	cd build/asan-tree && $(TEST_ENV) LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$(CURDIR)/build/asan-tree/reports/asan \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(CURDIR)/build/asan-tree/reports/ubsan \
	  $(BUSTED) --lua=$(LUA) --exclude-tags=live,noasan -o spec/support/summary.lua $(SPECS); rc=$$?; \
	  if ls $(CURDIR)/build/asan-tree/reports/* >/dev/null 2>&1; then \
	    echo "sanitizer reports:"; head -50 $(CURDIR)/build/asan-tree/reports/*; echo "0 passed, 1 failed"; exit 1; fi; \
	  echo "sanitizers: no reports"; exit $$rc

# The engine's specs under valgrind memcheck: any memory error or definite leak fails it.
# --ignore-lua keeps busted in this process (.busted names lua5.4, which would re-run it in a
# child that valgrind does not watch).
VALGRIND_SPECS ?= spec/core_spec.lua spec/apimart_spec.lua spec/retry_spec.lua spec/adapters spec/journal_spec.lua \
                  spec/faults_spec.lua spec/gateways_spec.lua
test-valgrind: deps all
	@sh scripts/deps.sh valgrind
	@$(TEST_DIRS)
	$(TEST_ENV) valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
	  --error-exitcode=99 --suppressions=spec/support/valgrind.supp \
	  $(LUA) $$(command -v busted) --ignore-lua \
	  -o spec/support/summary.lua $(VALGRIND_SPECS)

# The engine's threads (the worker, libcurl's resolver threads) under helgrind: a data race or a
# lock-order problem fails it. The specs that drive the worker hardest: downloads under the
# budget, the journal, capped replies, a resolver that never answers.
HELGRIND_SPECS ?= spec/budget_spec.lua spec/journal_spec.lua spec/decode_spec.lua spec/claims_spec.lua
test-helgrind: deps all
	@sh scripts/deps.sh valgrind
	@$(TEST_DIRS)
	$(TEST_ENV) valgrind --tool=helgrind --quiet --error-exitcode=99 \
	  --suppressions=spec/support/helgrind.supp \
	  $(LUA) $$(command -v busted) --ignore-lua \
	  -o spec/support/summary.lua $(HELGRIND_SPECS)

# Allocation failure: the core built so that its N-th allocation (its own and jansson's) fails,
# under ASan, run end to end once for every N (STEP=k: every k-th). Each run must end cleanly.
build/allocfail/pixflow/core.so: $(CORE_SRCS) $(CORE_HDRS) spec/support/failalloc.c spec/support/failalloc.h
	@mkdir -p $(@D)
	$(CC) -O1 -g -fsanitize=address -fno-omit-frame-pointer $(WARN) $(STD) -fPIC $(INC) \
	  -include spec/support/failalloc.h -DPF_TEST_FAILALLOC $(LUA_CFLAGS) $(DEP_CFLAGS) \
	  $(LIBFLAG) -o $@ $(CORE_SRCS) spec/support/failalloc.c $(DEP_LIBS)

build/allocfail-vg/pixflow/core.so: $(CORE_SRCS) $(CORE_HDRS) spec/support/failalloc.c spec/support/failalloc.h
	@mkdir -p $(@D)
	$(CC) -O0 -g $(WARN) $(STD) -fPIC $(INC) -include spec/support/failalloc.h -DPF_TEST_FAILALLOC \
	  $(LUA_CFLAGS) $(DEP_CFLAGS) $(LIBFLAG) -o $@ $(CORE_SRCS) spec/support/failalloc.c $(DEP_LIBS)

test-allocfail: deps all build/allocfail/pixflow/core.so build/allocfail-vg/pixflow/core.so
	@$(TEST_DIRS)
	$(TEST_ENV) sh scripts/allocfail.sh

# Not in CI: an hour, 20,000 tasks across every gateway with 5% of requests spoiled (scripts/soak.lua).
SOAK_SECONDS ?= 3600
SOAK_TASKS   ?= 20000
SOAK_FAULTS  ?= 0.05
soak: deps all
	@mkdir -p build
	LUA_PATH='lua/?.lua;lua/?/init.lua;./?.lua;;' LUA_CPATH='build/?.so;;' \
	  $(LUA) scripts/soak.lua $(SOAK_SECONDS) $(SOAK_TASKS) $(SOAK_FAULTS) 2>build/soak.progress | tee build/soak.log

# The benchmark suite (bench/run.lua, docs/benchmarks-method.md): pixflow against the libcurl
# floor (bench/floor.c), LuaSocket, Python's aiohttp and curl(1), on the sandbox. `make bench`
# takes a few minutes and rewrites docs/benchmarks.md and docs/benchmarks.svg; `make bench-smoke`
# runs every workload at a tiny size (CI), asserting no timing, only that the suite still runs.
BENCH_DEPS := python3-aiohttp gnuplot-nox
BENCH_RUNS ?= 5
BENCH_ENV  := LUA_PATH='lua/?.lua;lua/?/init.lua;./?.lua;;' LUA_CPATH='build/?.so;;'

build/bench-floor: bench/floor.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(STD) -o $@ $< $(DEP_LIBS)

bench: deps all build/bench-floor
	@sh scripts/deps.sh $(BENCH_DEPS)
	$(BENCH_ENV) $(LUA) bench/run.lua --runs $(BENCH_RUNS)

bench-smoke: deps all build/bench-floor
	@sh scripts/deps.sh $(BENCH_DEPS)
	$(BENCH_ENV) $(LUA) bench/run.lua --smoke

clean:
	rm -rf build out
