# edgeplane build. `make deps` once on a fresh Debian 12 host, then `make`,
# `make test`, `make demo`, `make bench`.

BUILD      ?= build
CC         ?= gcc
CLANG      ?= clang
BPFTOOL    ?= bpftool
PREFIX     ?= /usr/local
DESTDIR    ?=

ARCH       := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
PKGS       := libbpf libxdp yaml-0.1 jansson libcurl libmicrohttpd ldns openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lelf -lz -lpthread

WARN       := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wformat=2 -Wstrict-prototypes
CFLAGS     ?= -O2 -g
CFLAGS     += $(WARN) -std=gnu11 -D_GNU_SOURCE -fno-strict-aliasing -Iinclude -I$(BUILD)/include $(PKG_CFLAGS)
BPF_CFLAGS := -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) -Iinclude -I$(BUILD)/include

BPF_SRCS   := $(wildcard xdp/*.bpf.c tc/*.bpf.c)
BPF_OBJS   := $(patsubst %.bpf.c,$(BUILD)/bpf/%.bpf.o,$(notdir $(BPF_SRCS)))
SKELS      := $(patsubst %.bpf.c,$(BUILD)/include/%.skel.h,$(notdir $(BPF_SRCS)))

# Every module except the two mains goes into one static library that the
# binaries, unit tests and fuzzers link.
MAIN_SRCS  := agent/agent_main.c agent/cli_main.c
LIB_SRCS   := $(filter-out $(MAIN_SRCS),$(wildcard agent/*.c cache/*.c))
LIB_OBJS   := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
LIB        := $(BUILD)/libedgeplane.a

TEST_SRCS  := $(wildcard tests/unit/*.c tests/bpf/*.c)
TEST_BINS  := $(patsubst %.c,$(BUILD)/%,$(TEST_SRCS))
BENCH_SRCS := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst %.c,$(BUILD)/%,$(BENCH_SRCS))
HELPER_SRCS:= $(wildcard tests/tools/*.c)
HELPER_BINS:= $(patsubst %.c,$(BUILD)/%,$(HELPER_SRCS))
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

VPATH      := xdp:tc

.PHONY: all deps test demo bench fuzz asan install uninstall clean check-tools
all: $(BUILD)/edgeplane-agent $(BUILD)/edgeplane $(BPF_OBJS)

deps:
	./tests/lib/deps.sh

$(BUILD)/include/vmlinux.h:
	@mkdir -p $(dir $@)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: %.bpf.c $(BUILD)/include/vmlinux.h $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp.o
	$(BPFTOOL) gen object $@ $@.tmp.o && rm -f $@.tmp.o

$(BUILD)/include/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: %.c $(SKELS) $(wildcard include/*.h agent/*.h cache/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iagent -Icache -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/edgeplane-agent: $(BUILD)/obj/agent/agent_main.o $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BUILD)/edgeplane: $(BUILD)/obj/agent/cli_main.o $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

# Helpers the C tests, benchmarks and tools share (packet crafting, ...).
TESTLIB_SRCS := $(wildcard tests/lib/*.c)
TESTLIB      := $(BUILD)/libeptest.a
$(BUILD)/obj/tests/lib/%.o: tests/lib/%.c $(SKELS) $(wildcard include/*.h agent/*.h tests/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iagent -Icache -Itests/lib -c $< -o $@
$(TESTLIB): $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/%: tests/%.c $(TESTLIB) $(LIB) $(SKELS) $(wildcard tests/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iagent -Icache -Itests/lib -o $@ $< $(TESTLIB) $(LIB) $(PKG_LIBS) -lm

tests-bin: all $(TEST_BINS) $(BENCH_BINS) $(HELPER_BINS)
.PHONY: tests-bin

# libFuzzer targets: the library sources rebuilt with clang + ASan + UBSan.
FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-std=gnu11 -D_GNU_SOURCE -Iinclude -I$(BUILD)/include -Iagent -Icache $(PKG_CFLAGS)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(SKELS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRCS) $(PKG_LIBS)
fuzz: $(FUZZ_BINS)

# The agent built with AddressSanitizer + LeakSanitizer for the leak e2e test.
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -std=gnu11 -D_GNU_SOURCE \
	-Iinclude -I$(BUILD)/include -Iagent -Icache $(PKG_CFLAGS) $(WARN)
$(BUILD)/asan/edgeplane-agent: $(LIB_SRCS) agent/agent_main.c $(SKELS)
	@mkdir -p $(dir $@)
	$(CLANG) $(ASAN_FLAGS) -o $@ agent/agent_main.c $(LIB_SRCS) $(PKG_LIBS)
asan: $(BUILD)/asan/edgeplane-agent

test: deps
	$(MAKE) all tests-bin fuzz asan
	./tests/run.sh

demo: deps
	$(MAKE) all tests-bin
	./tests/lab/demo.sh

bench: deps
	$(MAKE) all tests-bin
	./tests/bench/run.sh

clean:
	rm -rf $(BUILD)

# make install / make uninstall (PREFIX, DESTDIR) live next to the unit and chart.
-include deploy/install.mk
