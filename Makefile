# tern — build, test and fuzz.
#
#   make            build build/tern (the daemon) and the unit tests
#   make check      unit tests (cmocka)
#   make itest      integration tests (pytest, real daemon on loopback)
#   make test       both
#   make asan       the same build with ASan+UBSan into build-asan/
#   make fuzz       every libFuzzer harness for FUZZ_SECONDS (default 30)
#   make bench      see bench/README.md
#
# BUILD selects the output folder; SAN=1 adds the sanitizers.

CC      ?= cc
BUILD   ?= build
SAN     ?= 0
PKGS    := libevent openssl libunbound libpsl libseccomp
CSTD    := -std=c17 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -Wformat=2 -Wno-format-truncation
OPT     ?= -O2 -g
CFLAGS_ALL := $(CSTD) $(WARN) $(OPT) -Isrc $(shell pkg-config --cflags $(PKGS)) $(CFLAGS)
LDLIBS_ALL := $(shell pkg-config --libs $(PKGS)) -lcrypt -lz $(LDLIBS)
ifeq ($(SAN),1)
CFLAGS_ALL += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=address,undefined
endif

LIB_SRC := $(sort $(wildcard src/common/*.c src/smtp/*.c src/server/*.c src/queue/*.c src/dns/*.c src/mailauth/*.c \
                             src/deliver/*.c src/daemon/*.c))
LIB_SRC := $(filter-out src/daemon/main.c,$(LIB_SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 30

.PHONY: all check itest test asan fuzz fuzz-build bench clean
all: $(BUILD)/tern $(BUILD)/ternctl $(BUILD)/tern-sendmail $(UNIT_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libtern.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tern: $(BUILD)/obj/src/daemon/main.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/ternctl: $(BUILD)/obj/src/cli/ternctl.o $(BUILD)/obj/src/cli/authcmd.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tern-sendmail: $(BUILD)/obj/src/cli/sendmail.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) -o $@ $< $(BUILD)/libtern.a $(LDLIBS_ALL) -lcmocka -lyaml

check: all
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

itest: all
	TERN_BIN=$(abspath $(BUILD)/tern) /usr/bin/python3 -m pytest -q tests/integration

test: check itest

asan:
	$(MAKE) BUILD=build-asan SAN=1 all

# libFuzzer harnesses: the library built once with clang and the sanitizers
# (fuzzer-no-link: coverage only), then each harness linked against it.
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := $(CSTD) -g -O1 -Isrc $(shell pkg-config --cflags $(PKGS)) $(FUZZ_SAN)
FUZZ_OBJ    := $(LIB_SRC:%.c=$(BUILD)/fuzzobj/%.o)

$(BUILD)/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(BUILD)/libtern-fuzz.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/libtern-fuzz.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libtern-fuzz.a $(LDLIBS_ALL)

fuzz-build: $(FUZZ_BIN)
fuzz: fuzz-build
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); \
	  mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS) s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -max_len=4096 \
	      $(BUILD)/fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_} 2>&1 | \
	      grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Test unit written' || true; \
	  if ls crash-* leak-* timeout-* >/dev/null 2>&1; then echo "fuzz finding in $$n"; exit 1; fi; \
	done

bench: all
	bash bench/run.sh $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf build build-asan

-include $(FUZZ_OBJ:.o=.d)
-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/src/daemon/main.d $(BUILD)/obj/src/cli/ternctl.d \
         $(BUILD)/obj/src/cli/authcmd.d \
         $(BUILD)/obj/src/cli/sendmail.d
