# netfence build. `make`, `make check`, `make conformance`, `make install`.
PREFIX ?= /usr/local
CNI_BIN_DIR ?= /opt/cni/bin
DESTDIR ?=
CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS := jansson libmnl libnftnl yaml-0.1 libxxhash

CFLAGS ?= -O2 -g
CFLAGS += -pthread -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
	  -D_GNU_SOURCE -MMD -MP $(shell $(PKG_CONFIG) --cflags $(PKGS))
LDLIBS += -pthread $(shell $(PKG_CONFIG) --libs $(PKGS))
# The plugin is started once per pod ADD and DEL: it is one static
# executable (as upstream's releases of the reference plugins are), so that no dynamic loader maps
# and binds libraries at each call (~0.3 ms on a cold start here,
# docs/performance-history.md) and a node needs no library to run it. Debian ships
# libmnl only as a shared library: plugin/mnl.c has the part of its API
# the plugin and libnftnl call. `make PLUGIN_LINK=dynamic` links the plugin
# against the system's shared libraries instead. build/netfence-dynamic is
# always that link of the same objects: valgrind's memcheck cannot follow
# malloc in a static executable (conformance/test_valgrind.sh).
PLUGIN_LINK ?= static
PLUGIN_STATIC_LIBS := jansson libnftnl libxxhash yaml-0.1
PLUGIN_STATIC_LDLIBS := -pthread $(shell $(PKG_CONFIG) --libs-only-l $(PLUGIN_STATIC_LIBS))
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRCS := $(wildcard netconf/*.c) $(wildcard enforce/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=build/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/asan/%) build/asan/test_mnl_libmnl
ASAN_LIB_OBJS := $(LIB_SRCS:%.c=build/asan/%.o)

all: bin/netfence bin/netfencectl build/netfence-dynamic

build/%.o: %.c
	@mkdir -p $(dir $@)
	@[ "$(Q)" ] && echo "  CC      $<" || true
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

build/libnetfence.a: $(LIB_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

ifeq ($(PLUGIN_LINK),static)
bin/netfence: build/plugin/netfence.o build/plugin/mnl.o build/libnetfence.a
	@mkdir -p bin
	@[ "$(Q)" ] && echo "  LD      $@ (static)" || true
	$(Q)$(CC) $(LDFLAGS) -static-pie -o $@ $^ $(PLUGIN_STATIC_LDLIBS)
else
bin/netfence: build/netfence-dynamic
	@mkdir -p bin
	$(Q)cp $< $@
endif

build/netfence-dynamic: build/plugin/netfence.o build/libnetfence.a
	@[ "$(Q)" ] && echo "  LD      $@" || true
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bin/netfencectl: build/plugin/netfencectl.o build/libnetfence.a
	@mkdir -p bin
	@[ "$(Q)" ] && echo "  LD      $@" || true
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: cmocka, under ASan and UBSan, no kernel needed.
build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -c -o $@ $<

build/asan/test_%: tests/unit/test_%.c $(ASAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -DSRCDIR='"$(CURDIR)"' -o $@ $^ $(LDLIBS) \
		$(shell $(PKG_CONFIG) --libs cmocka)

# plugin/mnl.c, and the same test against the system's libmnl: the
# expectations are libmnl's behaviour too
build/asan/test_mnl: tests/unit/test_mnl.c build/asan/plugin/mnl.o
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -DNF_OWN_MNL -o $@ $^ $(shell $(PKG_CONFIG) --libs cmocka)

build/asan/test_mnl_libmnl: tests/unit/test_mnl.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs libmnl cmocka)

check: $(UNIT_BINS)
	@rc=0; for t in $(UNIT_BINS); do \
		echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t || rc=1; \
	done; exit $$rc

# libFuzzer harnesses (clang) over every parser, under ASan+UBSan, each for
# FUZZ_SECONDS, seeded from testdata/. A crash or a sanitizer report fails.
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := cni manifest state cache
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=build/fuzz/%.o)
LIB_HDRS := $(wildcard netconf/*.h enforce/*.h)

# (no -MMD here: these objects depend on every header instead, so a
# changed struct never links against stale objects)
build/fuzz/%.o: %.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(Q)clang $(filter-out -MMD -MP,$(CFLAGS)) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJS)
	$(Q)clang $(filter-out -MMD -MP,$(CFLAGS)) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJS) $(LDLIBS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@rm -rf build/fuzz/corpus && mkdir -p $(FUZZ_TARGETS:%=build/fuzz/corpus/%)
	@cp testdata/cni/*.json testdata/conflist/* build/fuzz/corpus/cni/ 2>/dev/null || true
	@cp testdata/*.yaml build/fuzz/corpus/manifest/
	@cp testdata/state/*.json build/fuzz/corpus/state/ 2>/dev/null || true
	@for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix=build/fuzz/crash-$$t- build/fuzz/corpus/$$t 2>build/fuzz/$$t.log \
			|| { tail -50 build/fuzz/$$t.log; exit 1; }; \
		grep -E "stat::number_of_executed_units|stat::peak_rss_mb" build/fuzz/$$t.log; \
	done

# Warnings from a second compiler: clang, -Werror, no objects.
lint:
	$(Q)for f in $(LIB_SRCS) plugin/*.c tests/unit/*.c; do \
		clang $(filter-out -MMD -MP,$(CFLAGS)) -DSRCDIR='""' -fsyntax-only $$f || exit 1; \
	done; echo "clang: no warnings"

# Conformance: real plugins in private network namespaces (root).
conformance/cnitool/cnitool: conformance/cnitool/main.go
	cd conformance/cnitool && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$(CURDIR)/build/gocache \
		go build -o cnitool .

conformance: all conformance/cnitool/cnitool conformance/probe/probe build/nft_plan_driver
	conformance/run.sh

conformance/probe/probe: conformance/probe/probe.c
	$(CC) -O2 -Wall -Wextra -Werror -static -o $@ $<

install: all
	install -d $(DESTDIR)$(CNI_BIN_DIR) $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/netfence $(DESTDIR)$(CNI_BIN_DIR)/netfence
	install -m 0755 bin/netfencectl $(DESTDIR)$(PREFIX)/bin/netfencectl

clean:
	rm -rf build bin conformance/cnitool/cnitool conformance/probe/probe bench/nfb_time bench/connrate

# Benchmarks (root; private network namespaces): bench/README.md.
bench/nfb_time: bench/nfb_time.c
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

bench/connrate: bench/connrate.c
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

bench-build: all conformance/cnitool/cnitool conformance/probe/probe bench/nfb_time bench/connrate

bench: bench-build
	bench/run.sh $(BENCH_ARGS)

bench-smoke: bench-build
	bench/run.sh --smoke $(BENCH_ARGS)
	NFB_PHASES=1 NFB_BASE_BIN_DIR=bin bench/plugin_alone.sh 10 10 3
	NFB_BASE_BIN_DIR=bin bench/pc_alone.sh 10 10 3
	bench/growth.sh --out bench/results/smoke-growth 1 10 3 20 3
	bench/softirq.sh 3 2
	bench/flood.sh 3 2 1
	bench/afterdel.sh 3 2 10
	bench/delwait.sh --out bench/results/smoke-delwait 3 3
	bench/ktxn.sh 3 100 3
	bench/kasshard.sh 64 3
	bench/krules.sh 4 10 3

.PHONY: all check conformance install clean lint fuzz bench bench-build bench-smoke
.SECONDARY:
-include $(LIB_OBJS:.o=.d) $(ASAN_LIB_OBJS:.o=.d) build/plugin/netfence.d build/plugin/netfencectl.d build/plugin/mnl.d

# enforce/nft.c test driver, for conformance/nft_apply_test.sh (root; it
# makes its own network namespaces).
build/nft_plan_driver: tests/tools/nft_plan_driver.c build/libnetfence.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
