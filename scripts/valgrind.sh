#!/usr/bin/env bash
# Valgrind memcheck of the daemon's long-running processes: builds a
# sanitizer-free debug daemon (build-vg/, -O0 -g), runs a fast subset of the
# integration suite with every tern process under valgrind (forked children
# included), then reads every process's log. Fails on any invalid read or
# write, use of uninitialised memory, bad free, or definitely lost block.
#
#   scripts/valgrind.sh                   the default subset
#   scripts/valgrind.sh test_dns.py ...   these test files (or pytest args)
#
# VG_KEEP=DIR keeps the logs in DIR (default: a fresh temporary folder,
# printed at the end). VALGRIND_OPTS adds valgrind options, e.g.
# --track-origins=yes to see where an uninitialised value came from.
# Processes that end by SIGKILL (the test fixture's last resort) write no
# leak summary; that is expected. Every process that exits normally must
# show "definitely lost: 0 bytes": each frees everything at exit. The only
# suppressions are for OpenSSL's own leaks (scripts/valgrind-openssl.supp).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# The older paths (sessions, pipelining, BDAT, signals, limits), then one
# case of each newer process or channel: AUTH on submission (auth process),
# inbound checks (check process, libunbound), relaying over a reused
# connection (mta), ternctl hold/release (the queue's control socket).
SUBSET=(test_basic.py test_pipelining.py test_bdat.py test_signals.py test_limits.py
	test_auth.py::test_smtplib_login_plain_sendmail
	test_mailauth.py::test_signed_rsa_and_ed25519_pass
	test_outbound.py::test_connection_reuse
	test_ternctl.py::test_hold_release_delete)
BUILD=build-vg
OPENSSL_SUPP=$ROOT/scripts/valgrind-openssl.supp
JOBS=$(nproc 2>/dev/null || echo 2)

if ! command -v valgrind >/dev/null; then
	echo "valgrind.sh: valgrind is not installed (see scripts/deps.sh)" >&2
	exit 2
fi

# valgrind cannot run seccomp(2): this build (and only it) has no worker filter.
rm -f "$BUILD/obj/src/server/sandbox.o"
make -j"$JOBS" BUILD="$BUILD" OPT="-O0 -g" CFLAGS="-DTERN_NO_SANDBOX" "$BUILD/tern" "$BUILD/ternctl" \
	"$BUILD/tern-sendmail"

if [ -n "${VG_KEEP:-}" ]; then
	VGDIR=$VG_KEEP
	mkdir -p "$VGDIR"
	rm -f "$VGDIR"/vg.*.log
else
	VGDIR=$(mktemp -d "${TMPDIR:-/tmp}/tern-valgrind.XXXXXX")
fi
# The log folder must be writable by the unprivileged users the children
# become (valgrind opens a forked child's log before it drops root, but a
# child that execs opens a new one afterwards).
chmod 1777 "$VGDIR"

# The fixture starts TERN_BIN with -d -f CONF; this wrapper puts valgrind in
# front. valgrind runs the program in its own process, so the fixture's
# signals reach the daemon itself.
cat >"$VGDIR/tern" <<EOF
#!/bin/sh
exec valgrind --trace-children=yes --child-silent-after-fork=no \\
	--leak-check=full --show-leak-kinds=definite,indirect,possible \\
	--errors-for-leak-kinds=definite --error-exitcode=99 \\
	--num-callers=30 --log-file="$VGDIR/vg.%p.log" \\
	--suppressions="$OPENSSL_SUPP" \\
	"$ROOT/$BUILD/tern" "\$@"
EOF
chmod +x "$VGDIR/tern"
# The tests find tern-sendmail beside TERN_BIN; it is a short-lived client,
# run as it is.
ln -sf "$ROOT/$BUILD/tern-sendmail" "$VGDIR/tern-sendmail"

if [ $# -gt 0 ]; then
	TESTS=("$@")
else
	TESTS=("${SUBSET[@]}")
fi

start=$(date +%s)
prc=0 storm=0
(cd tests/integration &&
	exec env TERN_BIN="$VGDIR/tern" TERNCTL_BIN="$ROOT/$BUILD/ternctl" \
	TERN_START_TIMEOUT="${TERN_START_TIMEOUT:-60}" \
	/usr/bin/python3 -m pytest -q -p no:cacheprovider "${TESTS[@]}") \
	>"$VGDIR/pytest.log" 2>&1 &
pid=$!
# A process that dies at start under valgrind and is replaced at once makes
# thousands of logs a minute (the subset needs about 300 processes): stop
# the tests (SIGINT, so the fixtures stop their daemons) and say so.
while kill -0 "$pid" 2>/dev/null; do
	if [ "$(find "$VGDIR" -maxdepth 1 -name 'vg.*.log' | wc -l)" -gt "${VG_MAX_PROCS:-2000}" ]; then
		storm=1
		kill -INT "$pid" 2>/dev/null || true
		break
	fi
	sleep 2
done
wait "$pid" || prc=$?
cat "$VGDIR/pytest.log"
secs=$(($(date +%s) - start))
if [ "$storm" -eq 1 ]; then
	echo "valgrind: more than ${VG_MAX_PROCS:-2000} processes: stopped the tests"
fi
if grep -qs 'unhandled amd64-linux syscall: 317' "$VGDIR"/vg.*.log; then
	echo "valgrind: a process called seccomp(2), which valgrind does not" \
		"support: the smtp workers' sandbox must be off for this run"
fi

# ---- read the logs
bad=0 nlogs=0 nsum=0 nclean=0
def=0 ind=0 pos=0 sup=0
for f in "$VGDIR"/vg.*.log; do
	[ -e "$f" ] || continue
	nlogs=$((nlogs + 1))
	if grep -qE 'Invalid (read|write|free)|uninitialised|Mismatched free|unaddressable|definitely lost in|Process terminating with default action of signal (6|11)' "$f"; then
		bad=$((bad + 1))
		echo "---- $f"
		grep -m1 -E 'Command:' "$f" || true
		grep -E -A14 'Invalid (read|write|free)|uninitialised|Mismatched free|unaddressable|definitely lost in|Process terminating with default action of signal (6|11)' "$f" |
			head -n 80
	fi
	# "==PID==    definitely lost: 1,234 bytes in 5 blocks"
	if grep -q 'HEAP SUMMARY' "$f"; then
		nsum=$((nsum + 1))
		d=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | head -n 1)
		i=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | head -n 1)
		p=$(sed -n 's/.*possibly lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | head -n 1)
		s=$(sed -n 's/.*   suppressed: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | head -n 1)
		def=$((def + ${d:-0})) ind=$((ind + ${i:-0})) pos=$((pos + ${p:-0})) sup=$((sup + ${s:-0}))
		[ "${d:-0}" -eq 0 ] && nclean=$((nclean + 1))
	fi
done

echo
echo "valgrind: $nlogs processes, $nsum exited normally (leak summary), $((nlogs - nsum)) killed;" \
	"$nclean of $nsum with 0 bytes definitely lost"
echo "valgrind: lost bytes over all processes: definitely $def, indirectly $ind, possibly $pos;" \
	"suppressed (OpenSSL, scripts/valgrind-openssl.supp): $sup"
echo "valgrind: processes with errors: $bad; pytest exit $prc; $secs s; logs in $VGDIR"
status=0
if [ "$nlogs" -eq 0 ]; then
	echo "valgrind: no logs: the daemon did not run under valgrind"
	status=1
fi
[ "$bad" -eq 0 ] || status=1
[ "$storm" -eq 0 ] || status=1
[ "$prc" -eq 0 ] || status=1
exit "$status"
