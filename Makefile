# tapegrad — build, test, run, benchmark, install.
#
#   make            library (static + shared) and examples
#   make run        the main job: char_lm, an LSTM on Tiny Shakespeare
#   make words      classify_words: which language is a word (bidirectional GRU, 60 s)
#   make vanishing  one lesson (toy_rnn custom_cell tape_vs_fused course_rnn ln_lstm
#                   gradcheck_lesson vanishing tape_dot)
#   make test       build and run every Check suite
#   make asan       the whole suite under AddressSanitizer + UBSan
#   make valgrind   leak check of a 1,000-step record/backward/reset loop
#   make readme-check  compile and run every C snippet of README.md and */README.md
#   make hostile-table  the table of bad inputs and their errors (tests/README.md)
#   make bench      benchmark programs
#   make perf-table the README's training-step table, measured and written in
#   make fuzz       libFuzzer targets, FUZZ_SECONDS (60) each, ASan+UBSan (clang)
#   make tsan       thread pool, GEMM and char_lm's threads under ThreadSanitizer
#   make coverage   line coverage of the library by the test suite (gcov)
#   make soak       LSTM training for SOAK_STEPS (100000), resident memory every 10%
#   make install    PREFIX=/usr/local DESTDIR= (public headers, libraries, tapegrad.pc)
#   make mpi        build/mpi/char_lm, char_lm with --mpi (needs Open MPI's mpicc)
#   make test-mpi   its tests: 2 ranks against 1 process, resume, failures (mpirun)

CC      ?= cc
# MARCH is empty by default: the library runs on any processor of its
# architecture. The kernels (ISA_SRC) are compiled once per instruction
# set and chosen at run time (core/cpu.h); MARCH=-march=native builds the
# rest of the library for this machine only.
MARCH   ?=
OPT     ?= -O2
CFLAGS  ?= $(OPT) $(MARCH)
# -ffp-contract=off: no implicit fused multiply-adds (GCC's -std=c11 default,
# not clang's), so results match numpy's two roundings on every compiler.
WARN    := -std=c11 -ffp-contract=off -Wall -Wextra -Werror
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -I.
LDLIBS  += -lm -lpthread
BUILD   ?= build
# make V=1 shows every command
Q := $(if $(V),,@)
PREFIX  ?= /usr/local
# The version lives in core/api.h; the soname follows the ABI (see there):
# libtapegrad.so.0.<minor> while the major version is 0, then .so.<major>.
api_version = $(shell sed -n 's/^\#define TG_VERSION_$(1) \([0-9]*\)$$/\1/p' core/api.h)
VERSION := $(call api_version,MAJOR).$(call api_version,MINOR).$(call api_version,PATCH)
SONAME  := libtapegrad.so.$(if $(filter 0,$(call api_version,MAJOR)),0.$(call api_version,MINOR),$(call api_version,MAJOR))

LIB_DIRS := core ops nn optim
# Sources compiled once per instruction set, into <file>.<isa>.o: on x86-64
# AVX-512 (x86-64-v4), AVX2 with FMA (x86-64-v3) and the baseline; elsewhere
# only the portable build. Each ISA's -march comes after CFLAGS, so it
# overrides MARCH.
ISA_SRC  := ops/gemm_kernels.c ops/vmath_kernels.c nn/fused_gates.c
X86_64   := $(findstring x86_64,$(shell $(CC) -dumpmachine 2>/dev/null))
ISAS     := $(if $(X86_64),avx512 avx2 generic,generic)
ISA_FLAGS_avx512  := -march=x86-64-v4 -DTG_ISA_LEVEL=2
ISA_FLAGS_avx2    := -march=x86-64-v3 -DTG_ISA_LEVEL=1
ISA_FLAGS_generic := $(if $(X86_64),-march=x86-64) -DTG_ISA_LEVEL=0
LIB_SRC  := $(filter-out $(ISA_SRC),$(sort $(wildcard $(addsuffix /*.c,$(LIB_DIRS)))))
LIB_HDR  := $(sort $(wildcard $(addsuffix /*.h,$(LIB_DIRS))))
ISA_OBJ  := $(foreach isa,$(ISAS),$(ISA_SRC:%.c=%.$(isa).o))
# The library is compiled once, position-independent, into both the static
# and the shared library (building every file twice doubled each build: the
# tests, asan, tsan and coverage each compile it). -fno-semantic-interposition
# lets the compiler inline and call the library's exported functions
# directly inside the library, as it would without -fPIC.
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/lib/%.o) $(ISA_OBJ:%=$(BUILD)/lib/%)
PIC_FLAGS := -fPIC -fvisibility=hidden -fno-semantic-interposition
STATIC   := $(BUILD)/libtapegrad.a
SHARED   := $(BUILD)/libtapegrad.so
# The public headers: the umbrella tapegrad.h and what it includes. Only
# these are installed; every function they declare is exported (TG_API) and
# nothing else is (the shared library is built with -fvisibility=hidden).
PUBLIC_HDR := $(shell sed -n 's/^\#include "\(.*\)"/\1/p' tapegrad.h)

# examples/char_lm_mpi.c is MPI code: only `make mpi` builds it.
MPI_SRC     := examples/char_lm_mpi.c
EXAMPLE_SRC := $(filter-out $(MPI_SRC),$(sort $(wildcard examples/*.c)))
EXAMPLES    := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

# Test suites: tests/test_<name>.c defines `Suite *suite_<name>(void)`;
# everything else in tests/*.c is a shared helper or a standalone program.
SUITE_SRC   := $(sort $(wildcard tests/test_*.c))
SUITE_NAMES := $(SUITE_SRC:tests/test_%.c=%)
TEST_UTIL   := $(filter-out $(SUITE_SRC) tests/run_tests.c tests/leak_loop.c,$(wildcard tests/*.c))
TEST_OBJ    := $(patsubst %.c,$(BUILD)/obj/%.o,$(SUITE_SRC) $(TEST_UTIL) tests/run_tests.c)
TEST_BIN    := $(BUILD)/tests/run_tests


# Keep the object files that pattern rules make on the way to a program
# (make would delete them as intermediates and rebuild them next time).
.SECONDARY:

.PHONY: all lib examples test run words bench perf-table asan valgrind install uninstall clean check-deps \
        stage readme-check fuzz fuzz-build tsan coverage soak mpi mpi-check test-mpi
all: lib examples
lib: $(STATIC) $(SHARED)
examples: $(EXAMPLES)

$(BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) $(TEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/lib/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) $(PIC_FLAGS) -MMD -MP -c $< -o $@

# One object per (kernel source, ISA): $(1) is the ISA.
define ISA_RULES
$(BUILD)/lib/%.$(1).o: %.c Makefile
	@mkdir -p $$(dir $$@)
	@echo "  CC      $$< ($(1))"
	$(Q)$$(CC) $$(WARN) $$(CFLAGS) $$(ISA_FLAGS_$(1)) -DTG_ISA_BUILD=$(1) $$(CPPFLAGS) $$(PIC_FLAGS) \
	  -MMD -MP -c $$< -o $$@
endef
$(foreach isa,$(ISAS),$(eval $(call ISA_RULES,$(isa))))

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	@echo "  AR      $@"
	$(Q)$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) -shared $(CFLAGS) $(LDFLAGS) -Wl,-soname,$(SONAME) -o $@ $^ $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

# ---- tests -------------------------------------------------------------------

# Check and pkg-config: installed on Debian when missing (as root), otherwise
# the exact command is printed.
check-deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists check; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make test: installing Check and pkg-config (apt-get install -y check pkg-config)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq check pkg-config >/dev/null; \
	  else \
	    echo "make test needs the Check unit-test library and pkg-config. Install them with:"; \
	    echo "    sudo apt-get install -y check pkg-config"; exit 1; \
	  fi; \
	fi

CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

$(BUILD)/tests/suites.h: $(SUITE_SRC)
	@mkdir -p $(dir $@)
	@printf 'TG_SUITE(%s)\n' $(SUITE_NAMES) > $@.tmp
	@cmp -s $@.tmp $@ 2>/dev/null && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/obj/tests/%.o: TEST_CFLAGS = $(CHECK_CFLAGS) -I$(BUILD)/tests -DTG_BUILD_DIR='"$(BUILD)"'
$(BUILD)/obj/tests/run_tests.o: $(BUILD)/tests/suites.h
# test_install builds programs against $(STAGE) with the flags of this build
# (a sanitizer build's programs need its runtime too).
$(BUILD)/obj/tests/test_install.o: TEST_CFLAGS += -DTG_STAGE='"$(STAGE)"' \
  -DTG_CONSUMER_CC='"$(CC)"' -DTG_CONSUMER_CXX='"$(CXX)"' \
  -DTG_CONSUMER_FLAGS='"$(CFLAGS) $(LDFLAGS)"'

$(TEST_BIN): $(TEST_OBJ) $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(TEST_OBJ) $(STATIC) $(CHECK_LIBS) $(LDLIBS)

# Generous per-test timeout: sanitizer builds run several times slower.
# The suites run in TEST_JOBS runners side by side (one per CPU by default;
# run_tests --shard), each writing its log, printed whole when all are done.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
test: check-deps
	@$(MAKE) --no-print-directory $(TEST_BIN) $(EXAMPLES) stage
	@echo "run_tests: the suites in $(TEST_JOBS) runners (logs: $(BUILD)/tests/shard-*.log)"
	@rm -f $(BUILD)/tests/shard-*.log; cd tests && n=$(TEST_JOBS); pids=""; \
	for k in $$(seq 0 $$((n - 1))); do \
	  CK_DEFAULT_TIMEOUT=600 ../$(TEST_BIN) --shard $$k/$$n > ../$(BUILD)/tests/shard-$$k.log 2>&1 & \
	  pids="$$pids $$!"; \
	done; status=0; for p in $$pids; do wait $$p || status=1; done; \
	for k in $$(seq 0 $$((n - 1))); do cat ../$(BUILD)/tests/shard-$$k.log; done; \
	total=$$(cat ../$(BUILD)/tests/shard-*.log | awk -F'Checks: ' 'NF > 1 { t += $$2 + 0 } END { print t + 0 }'); \
	echo "run_tests: $$total checks in all, $$([ $$status = 0 ] && echo 'every one passed' || echo 'FAILURES above')"; \
	exit $$status
	@$(MAKE) --no-print-directory readme-check

# readme-check: every ```c block of README.md and of each folder's README.md
# compiles against the installed headers of $(STAGE) (#include
# <tapegrad/tapegrad.h>, as a user writes it; "tapegrad.h" finds the source
# tree), links against the static library and runs (exit status 0), so the
# READMEs cannot drift from the code. Block N of dir/README.md is written to
# $(BUILD)/readme/dir_N.c (top_N.c for the top one). A block is a whole
# program unless the line `<!-- fragment -->` comes before it (blank lines
# may sit between); a fragment is compiled as the body of main():
#     #include <tapegrad/tapegrad.h>
#     int main(void) { <block> return 0; }
READMES := README.md $(sort $(wildcard */README.md))
readme-check: stage
	@rm -rf $(BUILD)/readme && mkdir -p $(BUILD)/readme
	@for md in $(READMES); do \
	  prefix=$$(dirname $$md | sed 's,^\.$$,top,; s,/,_,g'); \
	  awk -v dir=$(BUILD)/readme -v prefix=$$prefix ' \
	  /^<!-- fragment -->[ \t]*$$/ && !code { fragment = 1; next } \
	  /^```c[ \t]*$$/ && !code { code = 1; n++; out = dir "/" prefix "_" n ".c"; \
	    if (fragment) print "#include <tapegrad/tapegrad.h>\nint main(void)\n{" > out; \
	    printf "" > out; next } \
	  /^```/ && code { if (fragment) print "return 0;\n}" > out; close(out); \
	    code = 0; fragment = 0; next } \
	  code { print > out; next } \
	  /[^ \t]/ { fragment = 0 }' $$md; \
	done
	@for src in $(BUILD)/readme/*.c; do \
	  [ -e "$$src" ] || continue; \
	  echo "readme-check: $$src"; \
	  $(CC) $(WARN) $(CFLAGS) -I$(STAGE)/include $(CPPFLAGS) $(LDFLAGS) -o "$${src%.c}" "$$src" \
	    $(STATIC) $(LDLIBS) \
	    && "$${src%.c}" >/dev/null || { echo "readme-check: $$src failed"; exit 1; }; \
	done

# LeakSanitizer's exit status 23 (not ASan's default 1) makes a leak in a
# program the tests run (char_lm refusing an option exits 1 anyway) fail its
# row of tests/test_hostile.c.
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
asan: check-deps
	LSAN_OPTIONS=exitcode=23 $(MAKE) --no-print-directory test BUILD=build/asan \
	  CFLAGS="$(SAN_FLAGS) $(MARCH)" LDFLAGS="-fsanitize=address,undefined"

$(BUILD)/tests/leak_loop: $(BUILD)/obj/tests/leak_loop.o $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

# Built apart without -march=native: valgrind cannot decode AVX-512.
valgrind:
	@$(MAKE) --no-print-directory build/valgrind/tests/leak_loop BUILD=build/valgrind MARCH= OPT="-O1 -g"
	valgrind --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all \
	  --error-exitcode=1 build/valgrind/tests/leak_loop 1000

# ---- reliability -----------------------------------------------------------------

# The hostile-input table of tests/README.md is made from tests/test_hostile.c:
# make hostile-table prints it, make hostile-table-update writes it into
# tests/README.md, and make test fails while the two differ.
.PHONY: hostile-table hostile-table-update
hostile-table: check-deps
	@$(MAKE) --no-print-directory $(TEST_BIN) >/dev/null
	@cd tests && TG_HOSTILE_TABLE=print CK_RUN_CASE=table ../$(TEST_BIN) hostile | grep '^|'
hostile-table-update: check-deps
	@$(MAKE) --no-print-directory $(TEST_BIN) >/dev/null
	@cd tests && TG_HOSTILE_TABLE=update CK_RUN_CASE=table ../$(TEST_BIN) hostile >/dev/null
	@echo "hostile-table-update: tests/README.md"

# make fuzz: every libFuzzer target tests/fuzz/fuzz_<name>.c (the parsers of
# outside input; see tests/fuzz/harness.h) runs FUZZ_SECONDS under ASan+UBSan,
# starting from the committed inputs in tests/fuzz/<name>/. New inputs go to
# build/fuzz/corpus/<name>/, a crashing one to build/fuzz/crash-<name>-*: copy
# it into tests/fuzz/<name>/ so that test_hostile replays it from then on.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := npy checkpoint text cli
# Targets fuzzed side by side: one per CPU.
FUZZ_JOBS    ?= $(shell nproc 2>/dev/null || echo 1)
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang and libFuzzer:" \
	  "sudo apt-get install -y clang libclang-rt-dev"; exit 1; }
	@$(MAKE) --no-print-directory fuzz-build BUILD=build/fuzz CC=$(FUZZ_CC) \
	  CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(MARCH)"
	@status=0; printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(FUZZ_JOBS) -I{} sh -c '\
	  mkdir -p build/fuzz/corpus/{}; \
	  echo "fuzz: {} for $(FUZZ_SECONDS) s (log: build/fuzz/{}.log)"; \
	  build/fuzz/fuzz_{} -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=8192 \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/crash-{}- \
	    build/fuzz/corpus/{} tests/fuzz/{} > build/fuzz/{}.log 2>&1' || status=1; \
	for t in $(FUZZ_TARGETS); do \
	  printf 'fuzz: %-10s %12s executions, corpus %s inputs, %s\n' $$t \
	    "$$(sed -n 's/^stat::number_of_executed_units: *//p' build/fuzz/$$t.log)" \
	    "$$(ls build/fuzz/corpus/$$t | wc -l)" \
	    "$$(ls build/fuzz/crash-$$t-* >/dev/null 2>&1 && echo 'CRASHED (see build/fuzz/crash-'$$t'-*)' || echo 'no crash')"; \
	done; exit $$status

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%)
$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/harness.h examples/cli.h examples/char_lm_options.h $(STATIC)
	@echo "  LD      $@"
	$(Q)$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) -fsanitize=fuzzer -o $@ $< $(STATIC) $(LDLIBS)

# The seed inputs of tests/fuzz/ (run build/fuzz-seeds from the top directory).
$(BUILD)/fuzz-seeds: tests/fuzz/make_seeds.c $(STATIC)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

# make tsan: ThreadSanitizer build (build/tsan) of the suites that run the
# thread pool (TSAN_SUITES: gemm holds the pool's and GEMM's tests, fused the
# recurrent kernels on top, engine the fused engine's threads, threads what
# core/tape.h lets run concurrently:
# tapes sharing parameters, a model shared for inference, the pool from two
# threads), then char_lm trained with 1 and 2 threads, whose checkpoints
# must be identical. Any reported race fails the target. Test cases tagged
# "reference" (single-threaded sweeps against a naive product; make test and
# make asan run them) are left out.
TSAN_FLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
TSAN_SUITES ?= gemm fused engine threads
TSAN_LM     := --hidden 128 --embed 32 --batch 16 --seq 32 --steps 20 --print-every 1000 \
               --eval-every 1000 --sample-every 100000 --length 8 --svg '' examples/data/dinos.txt
tsan: check-deps
	@$(MAKE) --no-print-directory build/tsan/tests/run_tests build/tsan/examples/char_lm \
	  BUILD=build/tsan CFLAGS="$(TSAN_FLAGS) $(MARCH)" LDFLAGS="-fsanitize=thread"
	cd tests && TSAN_OPTIONS="halt_on_error=1" CK_DEFAULT_TIMEOUT=600 CK_EXCLUDE_TAGS=reference \
	  ../build/tsan/tests/run_tests $(TSAN_SUITES)
	for t in 1 2; do \
	  TSAN_OPTIONS="halt_on_error=1" build/tsan/examples/char_lm $(TSAN_LM) --threads $$t \
	    --save build/tsan/char_lm_$$t.ckpt > build/tsan/char_lm_$$t.log 2>&1 \
	    || { cat build/tsan/char_lm_$$t.log; exit 1; }; \
	done
	cmp build/tsan/char_lm_1.ckpt build/tsan/char_lm_2.ckpt
	@echo "tsan: no data race; char_lm saves identical checkpoints with 1 and 2 threads"

# make coverage: the whole suite (make test) built by gcc with --coverage in
# build/coverage, then the line coverage of every library file (core/ ops/ nn/
# optim/, .c and .inc; not tests or examples, though the programs the tests
# run count) and the total, read from gcov's annotated sources in
# build/coverage/gcov/ (##### marks a line never run).
LIB_INC := $(sort $(wildcard $(addsuffix /*.inc,$(LIB_DIRS))))
coverage: check-deps
	@find build/coverage -name '*.gcda' -delete 2>/dev/null || true
	@$(MAKE) --no-print-directory test BUILD=build/coverage CC=gcc \
	  CFLAGS="-O0 -g --coverage $(MARCH)" LDFLAGS=--coverage
	@rm -rf build/coverage/gcov && mkdir -p build/coverage/gcov
	@for src in $(LIB_SRC); do \
	  gcov -o build/coverage/lib/$$(dirname $$src) $$src >/dev/null 2>&1; \
	  mv -f *.gcov build/coverage/gcov/ 2>/dev/null; \
	done; true
	@for f in $(LIB_SRC) $(LIB_INC); do \
	  awk -v f=$$f '$$1 == "#####:" { miss++ } $$1 ~ /^[0-9]+\*?:$$/ { hit++ } \
	    END { printf "%s %d %d\n", f, hit, hit + miss }' build/coverage/gcov/$$(basename $$f).gcov; \
	done | awk '{ printf "  %-24s %6.1f %% of %5d lines\n", $$1, $$3 ? 100 * $$2 / $$3 : 100, $$3; \
	  hit += $$2; all += $$3 } \
	  END { printf "coverage: %d of %d library lines run by the tests: %.1f %%\n", hit, all, 100 * hit / all }'

# make soak: examples/soak trains an LSTM for SOAK_STEPS steps and prints its
# resident memory every 10 %; it fails if the anonymous part (heap, stacks,
# arena) moves by more than 1 % after warm-up. ARGS="--path tape" passes options.
SOAK_STEPS ?= 100000
soak: $(BUILD)/examples/soak
	$(BUILD)/examples/soak --steps $(SOAK_STEPS) $(ARGS)

# ---- data-parallel training over MPI ----------------------------------------------

# make mpi: char_lm.c and the MPI hooks of examples/char_lm_mpi.c compiled by
# mpicc with CHAR_LM_MPI into $(MPI_BUILD)/char_lm (char_lm --mpi), against
# the ordinary library, which needs no MPI. Nothing else needs MPI.
# make test-mpi: the Check suite tests/mpi/test_mpi.c (plain C: it runs
# mpirun) with its own runner. As root, mpirun needs OMPI_ALLOW_RUN_AS_ROOT
# (the tests set it).
MPICC     ?= mpicc
MPIRUN    ?= mpirun
MPI_BUILD := $(BUILD)/mpi
MPI_SUITES := $(sort $(wildcard tests/mpi/test_*.c))

mpi-check:
	@command -v $(MPICC) >/dev/null 2>&1 && command -v $(MPIRUN) >/dev/null 2>&1 || { \
	  echo "make mpi: no $(MPICC) or $(MPIRUN) here. char_lm --mpi needs Open MPI; install it with:"; \
	  echo "    sudo apt-get install -y openmpi-bin libopenmpi-dev"; \
	  echo "(make all and make test do not need it)"; exit 1; }

mpi: mpi-check
	@$(MAKE) --no-print-directory $(MPI_BUILD)/char_lm

$(MPI_BUILD)/obj/%.o: examples/%.c Makefile
	@mkdir -p $(dir $@)
	@echo "  MPICC   $<"
	$(Q)$(MPICC) $(WARN) $(CFLAGS) $(CPPFLAGS) -DCHAR_LM_MPI -MMD -MP -c $< -o $@

$(MPI_BUILD)/char_lm: $(MPI_BUILD)/obj/char_lm.o $(MPI_BUILD)/obj/char_lm_mpi.o $(STATIC)
	@echo "  LD      $@"
	$(Q)$(MPICC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(MPI_BUILD)/tests/suites.h: $(MPI_SUITES)
	@mkdir -p $(dir $@)
	@printf 'TG_SUITE(%s)\n' $(MPI_SUITES:tests/mpi/test_%.c=%) > $@

$(MPI_BUILD)/obj/run_tests.o: tests/run_tests.c $(MPI_BUILD)/tests/suites.h Makefile
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) $(CHECK_CFLAGS) -I$(MPI_BUILD)/tests -c $< -o $@

$(BUILD)/obj/tests/mpi/%.o: TEST_CFLAGS += -DTG_MPIRUN='"$(MPIRUN)"' -DTG_MPI_BUILD_DIR='"$(MPI_BUILD)"'

$(MPI_BUILD)/run_tests: $(MPI_BUILD)/obj/run_tests.o $(MPI_SUITES:%.c=$(BUILD)/obj/%.o) \
                        $(BUILD)/obj/tests/util.o $(STATIC)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

test-mpi: check-deps mpi-check
	@$(MAKE) --no-print-directory $(MPI_BUILD)/char_lm $(MPI_BUILD)/run_tests $(BUILD)/examples/char_lm
	cd tests && CK_DEFAULT_TIMEOUT=900 ../$(MPI_BUILD)/run_tests

# ---- programs ------------------------------------------------------------------

# The main job: a character-level LSTM on Tiny Shakespeare (about two minutes
# on 2 cores); ARGS="--steps 200" passes options.
run: $(BUILD)/examples/char_lm
	$(BUILD)/examples/char_lm $(ARGS)

# Which language is this word? A bidirectional GRU over words of several
# lengths (examples/classify_words.c), 60 s of training; ARGS="--steps 500".
words: $(BUILD)/examples/classify_words
	$(BUILD)/examples/classify_words $(ARGS)

# Teaching examples: `make vanishing` builds and runs one; ARGS="--steps 100" passes options.
LESSONS := toy_rnn custom_cell tape_vs_fused course_rnn gradcheck_lesson vanishing tape_dot ln_lstm
.PHONY: $(LESSONS)
$(LESSONS): %: $(BUILD)/examples/%
	$(BUILD)/examples/$@ $(ARGS)

# BENCH_ARGS="--dtype f32 --threads 2 --sizes 512" narrows the run.
bench: $(BUILD)/examples/bench
	$(BUILD)/examples/bench $(BENCH_ARGS)

# The top README's performance table, measured back to back and written
# between its perf-table markers. PERF_ARGS="--onednn PATH --pytorch" adds
# the other systems (see examples/perf_table.py); an idle machine only.
perf-table: build/examples/bench
	/usr/bin/python3 examples/perf_table.py --readme README.md $(PERF_ARGS)

# ---- install ---------------------------------------------------------------------

# install_into(prefix): the libraries, the soname and development links, the
# public headers under <prefix>/include/tapegrad/ (#include
# <tapegrad/tapegrad.h>) and tapegrad.pc, whose Cflags point at
# <prefix>/include. $(DESTDIR) is prepended to every path written.
define install_into
	install -d $(DESTDIR)$(1)/lib/pkgconfig $(DESTDIR)$(1)/include/tapegrad
	install -m 644 $(STATIC) $(DESTDIR)$(1)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(1)/lib/libtapegrad.so.$(VERSION)
	ln -sf libtapegrad.so.$(VERSION) $(DESTDIR)$(1)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(1)/lib/libtapegrad.so
	install -m 644 tapegrad.h $(DESTDIR)$(1)/include/tapegrad/
	for h in $(PUBLIC_HDR); do \
	  install -d $(DESTDIR)$(1)/include/tapegrad/$$(dirname $$h) && \
	  install -m 644 $$h $(DESTDIR)$(1)/include/tapegrad/$$h || exit 1; \
	done
	printf '%s\n' 'prefix=$(1)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: tapegrad' 'Description: reverse-mode autodiff and recurrent networks in C' \
	  'Version: $(VERSION)' 'Libs: -L$${libdir} -ltapegrad' 'Libs.private: -lm -lpthread' \
	  'Cflags: -I$${includedir}' > $(DESTDIR)$(1)/lib/pkgconfig/tapegrad.pc
endef

install: lib
	$(call install_into,$(PREFIX))

# The copy that the tests build programs against (tests/test_install.c):
# installed afresh under $(BUILD)/stage, never outside build/.
STAGE := $(abspath $(BUILD))/stage
stage: lib
	@rm -rf $(STAGE)
	@echo "  INSTALL $(STAGE)"
	$(Q)$(MAKE) --no-print-directory install PREFIX=$(STAGE) DESTDIR= >/dev/null

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/tapegrad $(DESTDIR)$(PREFIX)/lib/pkgconfig/tapegrad.pc
	rm -f $(DESTDIR)$(PREFIX)/lib/libtapegrad.*

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
