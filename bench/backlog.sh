#!/usr/bin/env bash
# bench/backlog.sh [BIN] [N] — tern with a backlog (tern alone, no Postfix):
# N messages deferred for a dead destination, then 3000 relayed to a sink
# at S=20 beside them, then the retry wave (`ternctl queue flush`: all N at
# once, still refused). Prints the rates and the queue process's CPU per
# 1000 messages. Needs root, smtp-source/smtp-sink (bench/run.sh installs
# them) and the users _tern and vmail; see bench/README.md.
set -eu
BIN=${1:-build/tern}; N=${2:-20000}
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/tern-backlog.XXXXXX")
mkdir -p "$W/spool" "$W/mail"; chown vmail:vmail "$W/mail"
echo 'bench:{PLAIN}x' > "$W/users.passwd"
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu() { awk '{sub(/^.*\) /,""); split($0,f," "); print f[12]+f[13]}' "/proc/$1/stat"; }
calc() { /usr/bin/python3 -c "print(round($1, 2))"; }	# no bc on a bare Debian
queue_lines() { grep -c "proc=queue level=info event=$1" "$W/tern.log" || true; }
RPORT=$(port); SPORT=$(port); DPORT=$(port)	# DPORT: nobody listens
/usr/sbin/smtp-sink -u vmail -c "127.0.0.1:$SPORT" 1000 > /dev/null &
SINK=$!
cat > "$W/tern.conf" <<EOC
hostname bench.example
spool $W/spool
listen 127.0.0.1:$RPORT { mode submission }
limits { connections 15000; connections_per_ip 15000 }
domain localhost { users users.passwd; maildir $W/mail/%d/%u }
route sink.example { via 127.0.0.1:$SPORT }
route dead.example { via 127.0.0.1:$DPORT }
retry_interval 1h
auth_checks off
dns_server 127.0.0.1@9
EOC
"$BIN" -d -f "$W/tern.conf" >> "$W/tern.log" 2>&1 &
TP=$!
trap 'kill $TP 2>/dev/null; kill $SINK 2>/dev/null; wait $TP 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$RPORT") 2>/dev/null && break; sleep 0.05; done
sleep 0.3
Q=$(cat "$W/spool/queue.pid")
T0=$(date +%s.%N)
/usr/sbin/smtp-source -c -m "$N" -s 20 -l 2048 -f bench@localhost -t x@dead.example "127.0.0.1:$RPORT" >/dev/null
while [ "$(queue_lines deferred)" -lt "$N" ]; do sleep 0.2; done
echo "backlog: $N deferred in $(calc "$(date +%s.%N) - $T0") s"
a=$(cpu "$Q"); T0=$(date +%s.%N)
/usr/sbin/smtp-source -c -m 3000 -s 20 -l 5120 -f bench@localhost -t x@sink.example "127.0.0.1:$RPORT" >/dev/null
while [ "$(queue_lines removed)" -lt 3000 ]; do sleep 0.1; done
T1=$(date +%s.%N); b=$(cpu "$Q")
echo "relay beside it: 3000 at $(calc "3000 / ($T1 - $T0)") msg/s, queue CPU $(( (b - a) * 10 * 1000 / 3000 )) ms/1000"
a=$(cpu "$Q"); T0=$(date +%s.%N)
kill -USR1 "$Q"
while [ "$(queue_lines deferred)" -lt $((2 * N)) ]; do sleep 0.2; done
T1=$(date +%s.%N); b=$(cpu "$Q")
echo "retry wave: $N in $(calc "$T1 - $T0") s, queue CPU $(( (b - a) * 10 * 1000 / N )) ms/1000"
