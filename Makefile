# edgeplane build. `make deps` once on a fresh Debian 12 host, then `make`,
# `make test`, `make demo`, `make bench`.

BUILD      ?= build
CC         ?= gcc
CLANG      ?= clang
BPFTOOL    ?= bpftool
PREFIX     ?= /usr/local
DESTDIR    ?=

ARCH       := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
PKGS       := libbpf libxdp yaml-0.1 jansson libcurl libmicrohttpd ldns openssl libsystemd libseccomp
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lelf -lz -lpthread

WARN       := -Wall -Wextra -Werror -Wno-error=format-truncation -Wshadow -Wno-unused-parameter -Wformat=2 -Wstrict-prototypes
# User CFLAGS (make CFLAGS=-O0, distribution flags) only add to what the build
# needs; the project's own flags live in EP_CFLAGS so an override cannot drop them.
CFLAGS     ?= -O2 -g
EP_CFLAGS  := $(WARN) -std=gnu11 -D_GNU_SOURCE -fno-strict-aliasing $(PKG_CFLAGS)
DEPFLAGS    = -MMD -MP -MF $@.d
BPF_CFLAGS := -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) -Iinclude -I$(BUILD)/include

# Layers, each seeing only the headers of the layers below it (docs/architecture.md):
#   include/  datapath ABI, shared by BPF and user space
#   lib/      user-space helpers used by agent/ and cache/
#   cache/    the preload builder and dnsmasq supervision
#   agent/*/  the daemon and the CLI, one folder per concern
AGENT_DIRS := $(patsubst %/,%,$(sort $(dir $(wildcard agent/*/*.c agent/*/*.h))))
INC_lib    := -Iinclude -Ilib
INC_cache  := $(INC_lib) -Icache
INC_agent  := $(INC_cache) $(addprefix -I,$(AGENT_DIRS)) -I$(BUILD)/include
INC_tests  := $(INC_agent) -Itests/lib
inc_for     = $(INC_$(firstword $(subst /, ,$(1))))

BPF_SRCS   := $(wildcard xdp/*.bpf.c tc/*.bpf.c)
BPF_OBJS   := $(patsubst %.bpf.c,$(BUILD)/bpf/%.bpf.o,$(notdir $(BPF_SRCS)))
SKELS      := $(patsubst %.bpf.c,$(BUILD)/include/%.skel.h,$(notdir $(BPF_SRCS)))

# Every module except the two mains goes into one static library that the
# binaries, unit tests and fuzzers link.
MAIN_SRCS  := agent/core/agent_main.c agent/cli/cli_main.c
LIB_SRCS   := $(filter-out $(MAIN_SRCS),$(wildcard lib/*.c cache/*.c agent/*/*.c))
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

.PHONY: all deps test demo bench fuzz asan install uninstall clean check-tools image
all: $(BUILD)/edgeplane-agent $(BUILD)/edgeplane $(BPF_OBJS)

deps:
	./tests/lib/deps.sh

# Every command the scripts under tests/, deploy/ and this Makefile call comes
# from make deps or a minimal Debian 12 root (also part of make test).
check-tools:
	./tests/install/commands.sh

$(BUILD)/include/vmlinux.h:
	@mkdir -p $(dir $@)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: %.bpf.c $(BUILD)/include/vmlinux.h
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -MMD -MP -MF $@.d -MT $@ -c $< -o $@.tmp.o
	$(BPFTOOL) gen object $@ $@.tmp.o && rm -f $@.tmp.o

$(BUILD)/include/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@.tmp && mv $@.tmp $@

# Header dependencies come from the compiler (-MMD -MP): touching one header
# rebuilds only what includes it. Only the datapath loader and the tests embed
# BPF skeletons; they wait for them to exist on a first build.
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(EP_CFLAGS) $(call inc_for,$<) $(CFLAGS) $(CPPFLAGS) $(DEPFLAGS) -c $< -o $@
$(filter $(BUILD)/obj/agent/datapath/% $(BUILD)/obj/agent/canary/%,$(LIB_OBJS)): | $(SKELS)

# The agent's seccomp allow-list, one name a line, becomes a C string table;
# the chart's profile and the unit are checked against the same file
# (tests/install/confinement.sh).
EP_SYSCALLS := deploy/seccomp/edgeplane-agent.syscalls
$(BUILD)/include/ep_seccomp_syscalls.h: $(EP_SYSCALLS)
	@mkdir -p $(dir $@)
	sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$$/d' -e 's/.*/"&",/' $< >$@.tmp && mv $@.tmp $@
$(BUILD)/obj/agent/core/confine.o: $(BUILD)/include/ep_seccomp_syscalls.h

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/edgeplane-agent: $(BUILD)/obj/agent/core/agent_main.o $(LIB)
	$(CC) $(EP_CFLAGS) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BUILD)/edgeplane: $(BUILD)/obj/agent/cli/cli_main.o $(LIB)
	$(CC) $(EP_CFLAGS) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

# Helpers the C tests, benchmarks and tools share (packet crafting, ...).
TESTLIB_SRCS := $(wildcard tests/lib/*.c)
TESTLIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRCS))
TESTLIB      := $(BUILD)/libeptest.a
$(TESTLIB_OBJS): | $(SKELS)
$(TESTLIB): $(TESTLIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# Test programs compile like the rest (their own header dependencies) and link
# against the library, so a change in one module recompiles only its includers.
TESTPROG_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SRCS) $(BENCH_SRCS) $(HELPER_SRCS))
$(TESTPROG_OBJS): | $(SKELS)
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(EP_CFLAGS) $(CFLAGS) -o $@ $^ $(PKG_LIBS) -lm $(LDFLAGS)

# The seccomp loader of the pod-shaped tests (tests/lib/pod.sh) runs inside the
# image's root filesystem, whose libraries are not the host's: linked statically.
$(BUILD)/tests/tools/ep_seccomp_exec: $(BUILD)/obj/tests/tools/ep_seccomp_exec.o
	@mkdir -p $(dir $@)
	$(CC) $(EP_CFLAGS) $(CFLAGS) -static -o $@ $^ -lseccomp -ljansson $(LDFLAGS)

# An Alpine-like pod's resolver (tests/drills/dns_agent_loss.sh): musl's
# getaddrinfo, which asks A and AAAA together and fails on either's silence.
MUSL_BINS := $(BUILD)/tests/tools/ep_musl_resolve
$(BUILD)/tests/tools/ep_musl_resolve: tests/tools/musl/ep_musl_resolve.c
	@mkdir -p $(dir $@)
	musl-gcc -static -O2 -Wall -Wextra -Werror -o $@ $<

tests-bin: all $(TEST_BINS) $(BENCH_BINS) $(HELPER_BINS) $(MUSL_BINS)
.PHONY: tests-bin

# libFuzzer targets: the library sources compiled once with clang + coverage
# instrumentation + ASan + UBSan, then linked into each fuzzer.
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -O1 -g $(FUZZ_SAN) -std=gnu11 -D_GNU_SOURCE $(INC_agent) $(PKG_CFLAGS)
FUZZ_OBJS   := $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(LIB_SRCS))
$(BUILD)/fuzzobj/%.o: %.c | $(SKELS) $(BUILD)/include/ep_seccomp_syscalls.h
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -MF $@.d -c $< -o $@
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -MF $@.d -o $@ $< $(FUZZ_OBJS) $(PKG_LIBS)
fuzz: $(FUZZ_BINS)

# The agent built with AddressSanitizer + LeakSanitizer for the leak e2e test.
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -std=gnu11 -D_GNU_SOURCE \
	$(INC_agent) $(PKG_CFLAGS) $(WARN) -Wno-unknown-warning-option
ASAN_OBJS  := $(patsubst %.c,$(BUILD)/asanobj/%.o,$(LIB_SRCS) agent/core/agent_main.c)
$(BUILD)/asanobj/%.o: %.c | $(SKELS) $(BUILD)/include/ep_seccomp_syscalls.h
	@mkdir -p $(dir $@)
	$(CLANG) $(ASAN_FLAGS) -MMD -MP -MF $@.d -c $< -o $@
$(BUILD)/asan/edgeplane-agent: $(ASAN_OBJS)
	@mkdir -p $(dir $@)
	$(CLANG) $(ASAN_FLAGS) -o $@ $^ $(PKG_LIBS)
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

# The container image from deploy/Dockerfile, built with podman (base images
# from mmdebstrap, no registry): edgeplane/edgeplane:<version>. Cached between
# runs; tests/install/image.sh checks it from inside.
image:
	./deploy/image/build.sh

# make install / make uninstall (PREFIX, DESTDIR) live next to the unit and chart.
-include deploy/install.mk
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
