#!/usr/bin/env bash
# Builds tern, runs the static analysis (scripts/lint.sh), then every test:
# unit (cmocka) and integration (pytest) on the normal build, a subset of
# the integration tests under valgrind (scripts/valgrind.sh), unit and
# integration again on an ASan+UBSan build, then the fuzzers for a bounded
# time. Ends with "N passed, N failed" (unit + integration; lint and
# valgrind count as one test each when they fail); exits non-zero if
# anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
JOBS=$(nproc 2>/dev/null || echo 2)
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/tern-test.XXXXXX")
PASSED=0
FAILED=0
PROBLEMS=()

section() { printf '\n==== %s ====\n' "$*"; }

summary() {
	section "summary"
	if [ "${#PROBLEMS[@]}" -gt 0 ]; then
		printf 'FAILED: %s\n' "${PROBLEMS[@]}"
	fi
	echo "logs in $LOGDIR"
	echo "$PASSED passed, $FAILED failed"
}

# Adds the counts of a cmocka run (its "[  PASSED  ] N test(s)." and
# "[  FAILED  ] N test(s)" lines) to the totals.
count_cmocka() {
	local log=$1 rc=$2 p f
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]\+\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]\+\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	# A crash (signal, sanitizer abort) may leave no summary: count it once.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	PASSED=$((PASSED + p))
	FAILED=$((FAILED + f))
	[ "$f" -eq 0 ] || return 1
}

# Adds the counts of a pytest run ("N passed, N failed, N error(s)") to the totals.
count_pytest() {
	local log=$1 rc=$2 last p f e
	last=$(grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected)' "$log" | tail -n 1 || true)
	p=$(grep -Eo '\b[0-9]+ passed' <<<"$last" | awk '{print $1}' || true)
	f=$(grep -Eo '\b[0-9]+ failed' <<<"$last" | awk '{print $1}' || true)
	e=$(grep -Eo '\b[0-9]+ errors?' <<<"$last" | awk '{print $1}' || true)
	p=${p:-0}; f=$((${f:-0} + ${e:-0}))
	# Exit code 5 is "no tests collected": that is a failure too, as is any
	# other non-zero exit (collection error, crash) without counted failures.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	PASSED=$((PASSED + p))
	FAILED=$((FAILED + f))
	[ "$rc" -eq 0 ] && [ "$f" -eq 0 ]
}

# unit BUILD-DIR LABEL: every tests/unit binary of that build.
run_unit() {
	local build=$1 label=$2 t rc log n=0
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		n=$((n + 1))
		log="$LOGDIR/$label-$(basename "$t").log"
		echo "== $t"
		rc=0
		"$t" 2>&1 | tee "$log" || rc=$?
		count_cmocka "$log" "$rc" || PROBLEMS+=("$label unit: $(basename "$t")")
	done
	if [ "$n" -eq 0 ]; then
		echo "no unit test binaries in $build/tests"
		FAILED=$((FAILED + 1))
		PROBLEMS+=("$label unit: no tests")
	fi
}

# itest MAKE-ARGS...: the pytest suite against that build's daemon.
run_itest() {
	local label=$1 rc=0 log
	log="$LOGDIR/$label-itest.log"
	shift
	make "$@" itest 2>&1 | tee "$log" || rc=$?
	count_pytest "$log" "$rc" || PROBLEMS+=("$label integration (exit $rc)")
}

build_or_die() {
	if ! make -j"$JOBS" "$@"; then
		PROBLEMS+=("build: make $*")
		FAILED=$((FAILED + 1))
		summary
		exit 1
	fi
}

section "[1/10] dependencies"
bash scripts/deps.sh

section "[2/10] build (warnings are errors)"
build_or_die all

section "[3/10] lint (clang-tidy, cppcheck)"
# Any finding fails this section; it counts as one failed test.
rc=0
bash scripts/lint.sh 2>&1 | tee "$LOGDIR/lint.log" || rc=$?
if [ "$rc" -ne 0 ]; then
	FAILED=$((FAILED + 1))
	PROBLEMS+=("lint (exit $rc, see $LOGDIR/lint.log)")
fi

section "[4/10] unit tests"
run_unit build plain

section "[5/10] integration tests"
run_itest plain

section "[6/10] valgrind memcheck (integration subset, about 2 min)"
# Invalid accesses, uninitialised values or definite leaks in any daemon
# process fail this section (scripts/valgrind.sh); it counts as one failure.
rc=0
bash scripts/valgrind.sh 2>&1 | tee "$LOGDIR/valgrind.log" || rc=$?
if [ "$rc" -ne 0 ]; then
	FAILED=$((FAILED + 1))
	PROBLEMS+=("valgrind (exit $rc, see $LOGDIR/valgrind.log)")
fi

section "[7/10] ASan+UBSan build"
build_or_die BUILD=build-asan SAN=1 all

section "[8/10] unit tests (ASan+UBSan)"
export ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_unit build-asan asan

section "[9/10] integration tests (ASan+UBSan)"
# Forked children exit without freeing what the parent allocated, so leak
# reports of the daemon are noise; any other ASan or UBSan report aborts the
# process and the test fixture fails the test when it finds one in the log.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 run_itest asan BUILD=build-asan SAN=1
unset ASAN_OPTIONS UBSAN_OPTIONS

section "[10/10] fuzzing (${FUZZ_SECONDS} s per harness)"
if ! make fuzz FUZZ_SECONDS="$FUZZ_SECONDS"; then
	PROBLEMS+=("fuzz")
fi

summary
[ "${#PROBLEMS[@]}" -eq 0 ] && [ "$FAILED" -eq 0 ]
