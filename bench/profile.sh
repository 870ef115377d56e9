#!/usr/bin/env bash
# bench/profile.sh: one smtp-source run against a fresh tern, and where its
# CPU went: per tern process (ms per 1000 messages, context switches per
# message) and the whole machine's busy time. For comparing two builds in
# alternating runs; bench/run.sh is the benchmark.
#
#   bash bench/profile.sh [-n N] [-s S] [-l BYTES] [--relay] [--workers W]
#                         [--tern BIN]
#
#   -n N        messages (default 3000)     -s S      sessions at once (20)
#   -l BYTES    message size (5120)         --relay   to a remote domain,
#               relayed to a local smtp-sink, through a submission listener
#   --workers W tern's `workers` (default 0: one per CPU)
#   --tern BIN  the daemon to run (default build/tern)
#
# Environment: PERF=COMM records `perf record -g` of the first tern process
# named COMM (tern-smtp, tern-queue, tern-deliver, tern-mta) into
# $BENCH_DIR/profile.perf.data; STRACE=COMM writes `strace -c -f` of it to
# $BENCH_DIR/profile.strace; KEEP=1 keeps the work folder (spool, Maildir,
# tern.log). Runs as root (tern drops to _tern and vmail), on 127.0.0.1.
# The rate is smtp-source's (until the last 250), not until delivery.
set -euo pipefail

N=3000 S=20 L=5120 RELAY=0 WORKERS=0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TERN=$ROOT/build/tern
BENCH_DIR=${BENCH_DIR:-/var/tmp}
while [ $# -gt 0 ]; do
	case $1 in
	-n) N=$2; shift 2 ;;
	-s) S=$2; shift 2 ;;
	-l) L=$2; shift 2 ;;
	--relay) RELAY=1; shift ;;
	--workers) WORKERS=$2; shift 2 ;;
	--tern) TERN=$2; shift 2 ;;
	-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "profile.sh: run as root" >&2; exit 2; }
[ -x "$TERN" ] || { echo "profile.sh: no $TERN (make first)" >&2; exit 2; }
[ -x /usr/sbin/smtp-source ] || { echo "profile.sh: no smtp-source (bash scripts/deps.sh installs it)" >&2; exit 2; }

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

W=$(mktemp -d "$BENCH_DIR/tern-profile.XXXXXX")
TERN_PID="" SINK_PID="" TOOL_PID=""
cleanup() {
	for p in $TOOL_PID $TERN_PID $SINK_PID; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ]; then echo "work folder kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

mkdir -p "$W/spool" "$W/mail"
chown vmail:vmail "$W/mail"
echo 'bench:{PLAIN}x' >"$W/users.passwd"
PORT=$(free_port) RPORT=$(free_port) SPORT=$(free_port)
/usr/sbin/smtp-sink -u vmail -c "127.0.0.1:$SPORT" 1000 >/dev/null 2>&1 &
SINK_PID=$!
cat >"$W/tern.conf" <<EOF
hostname bench.example
spool $W/spool
workers $WORKERS
listen 127.0.0.1:$PORT { mode mx }
listen 127.0.0.1:$RPORT { mode submission }
limits { connections 15000; connections_per_ip 15000; message_size 50M }
domain localhost { users users.passwd; maildir $W/mail/%d/%u }
route sink.example { via 127.0.0.1:$SPORT }
auth_checks off
dns_server 127.0.0.1@9
EOF
"$TERN" -d -f "$W/tern.conf" >>"$W/tern.log" 2>&1 &
TERN_PID=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
	sleep 0.05
done
sleep 0.3

# "pid comm cpu-ticks context-switches" of tern and its children.
snapshot() {
	local p
	for p in $(pgrep -P "$TERN_PID") "$TERN_PID"; do
		echo "$p $(cat "/proc/$p/comm") $(awk '{ sub(/^.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$p/stat") $(cat /proc/"$p"/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }')"
	done
}
first_named() {
	local p
	for p in $(pgrep -P "$TERN_PID"); do
		[ "$(cat "/proc/$p/comm")" = "$1" ] && { echo "$p"; return; }
	done
}
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

TO=bench@localhost P=$PORT
[ "$RELAY" = 1 ] && { TO=x@sink.example; P=$RPORT; }
snapshot >"$W/a"
M0=$(machine_ticks)
if [ -n "${PERF:-}" ]; then
	perf record -q -g -o "$BENCH_DIR/profile.perf.data" -p "$(first_named "$PERF")" 2>/dev/null &
	TOOL_PID=$!
elif [ -n "${STRACE:-}" ]; then
	strace -c -f -o "$BENCH_DIR/profile.strace" -p "$(first_named "$STRACE")" 2>/dev/null &
	TOOL_PID=$!
	sleep 0.5
fi
T0=$EPOCHREALTIME
/usr/sbin/smtp-source -c -m "$N" -s "$S" -l "$L" -f bench@localhost -t "$TO" "127.0.0.1:$P" >/dev/null
T1=$EPOCHREALTIME
if [ -n "$TOOL_PID" ]; then
	kill -INT "$TOOL_PID"; wait "$TOOL_PID" || true; TOOL_PID=""
fi
sleep 1	# deliveries and relays still in flight
M1=$(machine_ticks)
snapshot >"$W/b"
awk -v n="$N" -v t0="$T0" -v t1="$T1" -v s="$S" \
	'BEGIN { printf "rate %.1f msg/s (smtp-source, %d messages, S=%d)\n", n / (t1 - t0), n, s }' 
[ "$RELAY" = 1 ] || echo "delivered $(find "$W/mail/localhost/bench/new" -type f | wc -l)"
echo "machine $(( (M1 - M0) * 10 * 1000 / N )) ms per 1000 (all CPUs, incl. 1 s after)"
join "$W/a" "$W/b" | awk -v n="$N" '{ d = ($6 - $3) * 10 * 1000 / n; tot += d;
	printf "%-14s %6.1f ms per 1000 %5.2f context switches per message\n", $2, d, ($7 - $4) / n }
	END { printf "%-14s %6.1f ms per 1000\n", "(all of tern)", tot }'
