# FleetSync build.
#
#   make                 build/fleetsync (warnings are errors)
#   make unit            unit tests (cmocka), plain build
#   make unit SAN=1      unit tests under ASan + UBSan (objects in build/san)
#   make fuzz            libFuzzer targets (clang), built into build/fuzz
#   make format          apply .clang-format (make format-check: test it)
#   make test            bootstrap, build, every test suite (tests/run)
#   make demo            bootstrap, build, fleetsync up
#   make bench / chaos   bootstrap, build, benchmarks (bench/run, history, dashboard, detect, notify, billing, cold, pack, ingest, system) / fault suite
#
# Sources are found by wildcard: a new src/<component>/foo.c is built into the
# binary, a new tests/unit/test_foo.c becomes the test binary test_foo.

CC      ?= cc
CLANG   ?= clang
PKGS    := rdkafka jansson libpq zlib libssl libcrypto libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcivetweb -lm -lpthread

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Wno-format-nonliteral -Werror
CSTD    := -std=c11 -D_GNU_SOURCE
OPT     ?= -O2 -g

ifeq ($(SAN),1)
BUILD   ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT     := -O1 -g
else
BUILD   ?= build
SANFLAGS :=
endif

CFLAGS_ALL  = $(CSTD) $(OPT) $(WARN) $(SANFLAGS) -Isrc $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)

SRCS      := $(sort $(wildcard src/*/*.c))
SQL       := $(sort $(wildcard sql/[0-9]*.sql))
GEN_SQL   := $(BUILD)/gen/migrations.c
OBJS      := $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/migrations.o
MAIN_OBJ  := $(BUILD)/obj/main.o
LIB       := $(BUILD)/libfleetsync.a
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

.PHONY: format-check tools all unit unit-san fuzz test demo bench chaos bootstrap clean format

all: $(BUILD)/fleetsync

$(BUILD)/fleetsync: $(MAIN_OBJ) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $(MAIN_OBJ) $(LIB) $(PKG_LIBS)

$(LIB): $(OBJS)
	@rm -f $@
	ar rcs $@ $(OBJS)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

# The numbered migrations of sql/, compiled into the binary (src/core/pg.h).
$(GEN_SQL): $(SQL) scripts/embed-sql
	@mkdir -p $(dir $@)
	scripts/embed-sql $@ $(SQL)

$(BUILD)/obj/gen/migrations.o: $(GEN_SQL)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(LIB) $(PKG_LIBS) -lcmocka $(LDFLAGS_ALL)

# In-process benchmarks of one component: build/bench/detect_engine.
$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(PKG_LIBS) $(LDFLAGS_ALL)

# Small clients the end-to-end suites use where kcat cannot do the job:
# build/tools/kafka_produce (records with a given timestamp).
$(BUILD)/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(PKG_LIBS) $(LDFLAGS_ALL)

tools: $(TOOL_BINS)

unit: $(UNIT_BINS)
	@tests/run-unit $(BUILD)/tests

unit-san:
	$(MAKE) SAN=1 unit

# libFuzzer targets link every component source (not main.c), compiled once
# by clang with coverage into build/fuzz/libfleetsync.a; each target links it.
FUZZ_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -g -O1
FUZZ_OBJS  := $(SRCS:src/%.c=build/fuzz/obj/%.o) build/fuzz/obj/gen/migrations.o
FUZZ_LIB   := build/fuzz/libfleetsync.a

build/fuzz/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CLANG) $(CSTD) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -Isrc $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/obj/gen/migrations.o: $(GEN_SQL)
	@mkdir -p $(dir $@)
	$(CLANG) $(CSTD) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -Isrc $(PKG_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $(FUZZ_OBJS)

build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(CLANG) $(CSTD) $(FUZZ_FLAGS) -fsanitize=fuzzer -Isrc $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB) $(PKG_LIBS)

fuzz: $(FUZZ_BINS)

bootstrap:
	@scripts/bootstrap

test: bootstrap
	@$(MAKE) --no-print-directory all tools
	@tests/run

demo: bootstrap
	@$(MAKE) --no-print-directory all
	build/fleetsync up

bench: bootstrap
	@$(MAKE) --no-print-directory all tools
	@t=$$(date +%s) && bench/run $(if $(QUICK),--quick) && bench/history $(if $(QUICK),--quick) && \
	  bench/dashboard $(if $(QUICK),--quick) && bench/detect $(if $(QUICK),--quick) && \
	  bench/notify $(if $(QUICK),--quick) && bench/billing $(if $(QUICK),--quick) && bench/cold $(if $(QUICK),--quick) && \
	  bench/pack $(if $(QUICK),--quick) && \
	  bench/billing_backlog $(if $(QUICK),--quick) && \
	  bench/memory $(if $(QUICK),--quick) && \
	  bench/ingest $(if $(QUICK),--quick) $(if $(INGEST_OLD),--old $(INGEST_OLD)) && \
	  BENCH_SINCE=$$t bench/system $(if $(QUICK),--quick)

chaos: bootstrap
	@$(MAKE) --no-print-directory all tools
	@tests/chaos/run

# The C sources follow .clang-format; `make format` applies it, `make
# format-check` (run by `make test`) names every file that does not.
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	@n=0; for f in $(FORMAT_FILES); do clang-format "$$f" | cmp -s - "$$f" || \
	  { echo "not ok - $$f does not follow .clang-format (make format)"; n=1; }; done; \
	[ $$n = 1 ] || echo "ok - every C file follows .clang-format"; exit $$n

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(FUZZ_OBJS:.o=.d)
