#!/usr/bin/env bash
# Static analysis of src/ with clang-tidy (checks in .clang-tidy) and cppcheck
# (suppressions in .cppcheck-suppressions). Prints every finding and exits
# non-zero if there is any: CI allows none.
#
#   scripts/lint.sh           every file of src/ except those in LINT_PENDING
#   scripts/lint.sh --all     every file of src/, LINT_PENDING included
#   scripts/lint.sh FILE...   only these files
#
# LINT_JOBS sets how many clang-tidy processes run at once (default: nproc).
# A false positive is silenced where it occurs, with the reason:
#   // NOLINT(check-name): why          (clang-tidy)
#   /* cppcheck-suppress id ; why */    (cppcheck, on the line above)
set -euo pipefail
cd "$(dirname "$0")/.."

# Files being rewritten right now; their findings are reported by hand and
# they are linted again once they land. The lead empties this list. Globs
# relative to the project root; a pending X.c makes X.h pending too.
LINT_PENDING=""

PKGS="libevent openssl libunbound libpsl libseccomp"
# shellcheck disable=SC2086  # one word per package
CFLAGS="-std=c17 -D_GNU_SOURCE -Isrc $(pkg-config --cflags $PKGS)"
JOBS=${LINT_JOBS:-$(nproc 2>/dev/null || echo 2)}

for tool in clang-tidy cppcheck; do
	if ! command -v "$tool" >/dev/null; then
		echo "lint: $tool is not installed (see scripts/deps.sh)" >&2
		exit 2
	fi
done

# pending PATH: true if PATH (relative) is in LINT_PENDING.
pending() {
	local f=$1 g
	[ "$ALL" -eq 0 ] || return 1
	# shellcheck disable=SC2053  # $g is a glob on purpose
	for g in $LINT_PENDING; do
		[[ $f == $g ]] && return 0
		[[ $f == *.h && ${f%.h}.c == $g ]] && return 0
	done
	return 1
}

ALL=0
FILES=()
if [ "${1:-}" = "--all" ]; then
	ALL=1
	shift
fi
if [ $# -gt 0 ]; then
	FILES=("$@")
else
	for f in src/*/*.c; do
		pending "$f" || FILES+=("$f")
	done
fi
# shellcheck disable=SC2086  # expands the globs to the files they match
[ "$ALL" -eq 1 ] || echo "lint: pending, not linted:" $LINT_PENDING

OUT=$(mktemp -d "${TMPDIR:-/tmp}/tern-lint.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
start=$(date +%s)

# ---- clang-tidy: one process per file, JOBS at once; each leaves its
# diagnostics in OUT/NAME.out and its exit status in OUT/NAME.rc.
# shellcheck disable=SC2016  # expanded by the inner sh
printf '%s\n' "${FILES[@]}" | xargs -P "$JOBS" -I{} sh -c '
	out="$1/$(echo "$2" | tr / _)"
	rc=0
	clang-tidy --quiet "$2" -- $3 >"$out.out" 2>"$out.err" || rc=$?
	echo "$rc" >"$out.rc"' sh "$OUT" {} "$CFLAGS"

# A diagnostic is its "file:line:col: warning|error: ..." line and the
# note and source lines after it. Keep those outside pending files, once
# each (a header's finding shows up in every file that includes it).
: >"$OUT/tidy"
for f in "${FILES[@]}"; do
	base="$OUT/$(echo "$f" | tr / _)"
	rc=$(cat "$base.rc" 2>/dev/null || echo missing)
	# 0: clean; 1: diagnostics (they are errors under WarningsAsErrors).
	if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
		echo "$f: clang-tidy failed (exit $rc)" >>"$OUT/tidy-failed"
		cat "$base.err" >>"$OUT/tidy-failed" 2>/dev/null || true
	fi
	sed "s|^$PWD/||" "$base.out" >>"$OUT/tidy"
done
: >"$OUT/tidy-kept"
block="" keep=0
declare -A seen=()
flush() {
	if [ -n "$block" ] && [ "$keep" -eq 1 ]; then
		printf '%s' "$block" >>"$OUT/tidy-kept"
	fi
	block="" keep=0
}
while IFS= read -r line; do
	if [[ $line =~ ^([^\ :]+):[0-9]+:[0-9]+:\ (warning|error): ]]; then
		flush
		file=${BASH_REMATCH[1]}
		if ! pending "$file" && [ -z "${seen[$line]:-}" ]; then
			seen[$line]=1
			keep=1
		fi
	fi
	[ -z "$line" ] && [ -z "$block" ] && continue
	block+="$line"$'\n'
done <"$OUT/tidy"
flush
ntidy=$(grep -cE '^[^ :]+:[0-9]+:[0-9]+: (warning|error): ' "$OUT/tidy-kept" || true)

# ---- cppcheck: its own configurations of libc, POSIX and OpenSSL instead
# of the system headers (faster, fewer false positives); it does not know
# C11 _Noreturn, so that is spelt as the GNU attribute for it.
crc=0
cppcheck --std=c17 -D_GNU_SOURCE '-D_Noreturn=__attribute__((noreturn))' -Isrc \
	--library=posix --library=gnu --library=openssl \
	--enable=warning,style,performance,portability --inconclusive \
	--inline-suppr --suppressions-list=.cppcheck-suppressions \
	--quiet -j "$JOBS" \
	--template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
	"${FILES[@]}" 2>"$OUT/cppcheck.raw" || crc=$?
: >"$OUT/cppcheck"
while IFS= read -r line; do
	file=${line%%:*}
	pending "$file" || printf '%s\n' "$line" >>"$OUT/cppcheck"
done <"$OUT/cppcheck.raw"
ncpp=$(wc -l <"$OUT/cppcheck")

# ---- report
cat "$OUT/tidy-kept" "$OUT/cppcheck"
status=0
if [ -s "$OUT/tidy-failed" ]; then
	cat "$OUT/tidy-failed"
	status=1
fi
if [ "$crc" -ne 0 ]; then
	echo "lint: cppcheck failed (exit $crc)"
	status=1
fi
echo "lint: ${#FILES[@]} files, clang-tidy: $ntidy, cppcheck: $ncpp finding(s)" \
	"in $(($(date +%s) - start)) s"
[ "$ntidy" -eq 0 ] && [ "$ncpp" -eq 0 ] || status=1
exit "$status"
