# keel: a thin wrapper around the CMake build.
#
#   make            release build in build/ (build-clang/ when CC=clang)
#   make test       install missing packages, build, run every test (ctest)
#   make asan       the same under AddressSanitizer + UBSan, in build-asan/
#   make tsan       the seg and disk engines' tests under ThreadSanitizer, in build-tsan/
#   make trace      the same with every function traced (KEEL_TRACE=ON), in build-trace/
#   make run        install missing packages, build, start keeld on 127.0.0.1:11211
#   make bench      build and run every benchmark; make bench-NAME runs one
#   make format     format the tree with .clang-format; make format-check checks it
#   make fuzz       fuzz the memcache parser with libFuzzer for FUZZ_S seconds (default 60)
#                   or FUZZ_RUNS inputs, whichever comes first (default: no input limit)
#   make install    cmake --install (PREFIX=/usr/local by default)
#   make clean      remove every build directory

# CC from the environment (CC=clang make) picks a build directory of its own,
# so gcc and clang builds never share a CMake cache.
ifeq ($(origin CC),default)
BUILD ?= build
CMAKE_CC :=
else
BUILD ?= build-$(notdir $(CC))
CMAKE_CC := -DCMAKE_C_COMPILER=$(CC)
endif
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
RUN_ARGS ?=

CMAKE_GEN := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")

.PHONY: all build deps test asan tsan trace run bench fuzz format format-check install clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release $(CMAKE_CC)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: deps
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DKEEL_SANITIZE=ON $(CMAKE_CC)

asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

TSAN_BUILD ?= build-tsan
$(TSAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(TSAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_TSAN=ON $(CMAKE_CC)

tsan: deps $(TSAN_BUILD)/CMakeCache.txt
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target test_seg test_seg_threads test_seg_evict \
	  test_seg_hash test_disk test_disk_threads test_disk_direct test_disk_fibers
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j $(JOBS) -R '^(seg|disk$$|disk_threads|disk_direct|disk_fibers)'

TRACE_BUILD ?= build-trace
$(TRACE_BUILD)/CMakeCache.txt:
	cmake -S . -B $(TRACE_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DKEEL_TRACE=ON $(CMAKE_CC)

trace: deps $(TRACE_BUILD)/CMakeCache.txt
	cmake --build $(TRACE_BUILD) -j $(JOBS)
	cd $(TRACE_BUILD) && ctest --output-on-failure -j $(JOBS)

run: deps
	@$(MAKE) --no-print-directory build
	$(BUILD)/tools/keeld/keeld $(RUN_ARGS)

bench: deps
	@$(MAKE) --no-print-directory build
	cmake --build $(BUILD) --target bench

bench-%: deps
	@$(MAKE) --no-print-directory build
	cmake --build $(BUILD) --target bench-$*

# libFuzzer (clang's -fsanitize=fuzzer, from libclang-rt-14-dev) over the
# memcache parser, starting from the seed corpus; new inputs go to
# build-fuzz/corpus, a crash to build-fuzz/crash-*.
FUZZ_S ?= 60
FUZZ_RUNS ?= -1
FUZZ_BUILD ?= build-fuzz
FUZZ_SRC := tests/fuzz/fuzz_memcache.c $(wildcard src/protocol/memcache/*.c)
$(FUZZ_BUILD)/fuzz_memcache: $(FUZZ_SRC) include/keel/memcache.h
	mkdir -p $(FUZZ_BUILD)/corpus
	clang -std=gnu11 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -Iinclude $(FUZZ_SRC) -o $@

fuzz: deps $(FUZZ_BUILD)/fuzz_memcache
	cd $(FUZZ_BUILD) && ./fuzz_memcache -max_total_time=$(FUZZ_S) -runs=$(FUZZ_RUNS) -print_final_stats=1 \
	  -max_len=6000 -timeout=10 corpus ../tests/fuzz/corpus/memcache

format:
	git ls-files --cached --others --exclude-standard '*.c' '*.h' | xargs clang-format -i

format-check:
	git ls-files --cached --others --exclude-standard '*.c' '*.h' | xargs clang-format --dry-run -Werror

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build build-* 
