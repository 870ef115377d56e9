#!/usr/bin/env bash
# bench/run.sh: load harness, tern side by side with a private Postfix instance.
#
#   bash bench/run.sh [--only tern|postfix] [--quick] [--keep]
#                     [--scenario SUBSTRING]
#   make bench [ONLY=tern]
#
# Both servers accept mail on 127.0.0.1 from Postfix's smtp-source and deliver
# it into a Maildir, with their default durability (fsync before the 250).
# For every scenario the rate is messages / (wall time from the start of
# smtp-source until the last message is a file in Maildir/new), median of
# RUNS runs.  "relay to sink" sends to a remote domain that each server
# relays to its own smtp-sink (timed until the sink counted them all);
# "idle connections" holds BENCH_N_IDLE greeted clients (bench/idle.py) and
# reports the servers' PSS and a new client's wait for its greeting.
# See bench/README.md for what each column means.
#
# Environment (all optional):
#   BUILD=build        make output folder holding the tern binary
#   BENCH_DIR=/var/tmp where the work folder (spools, Maildirs, logs) is made;
#                      must be a real disk (a tmpfs would make fsync free)
#   BENCH_N=2000       messages per run for the 5 KiB scenarios (--quick: 300)
#   BENCH_N_BIG=200    messages per run for the 1 MiB scenario (--quick: 30)
#   BENCH_RUNS=3       runs per scenario, the median is reported (--quick: 1)
#   BENCH_TIMEOUT=120  seconds to wait for the last delivery after smtp-source
#   BENCH_N_IDLE=10000 idle connections held at once (--quick: 2000)
#   BENCH_IDLE_HOLD=0  seconds to keep holding them after the measurements
#   BENCH_DROP_CACHES=1  sync and drop the clean page cache before every run
#                      (0: do not; see settle_memory)
#   BENCH_TERN_WORKERS=0  tern's `workers` (0: its default)
#
# Traffic stays on 127.0.0.1.  Every process started here is stopped on exit:
# tern by the PID of its parent (SIGTERM; its children by PID if they linger),
# Postfix with `postfix -c DIR stop` (then `abort`), the sinks by PID.
# The system Postfix instance (/etc/postfix) is never configured, started
# or stopped.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ONLY=""
QUICK=0
KEEP=0
PICK=""
while [ $# -gt 0 ]; do
	case "$1" in
	--only) ONLY=${2:-}; shift 2 ;;
	--only=*) ONLY=${1#--only=}; shift ;;
	--quick) QUICK=1; shift ;;
	--keep) KEEP=1; shift ;;
	--scenario) PICK=${2:-}; shift 2 ;;
	--scenario=*) PICK=${1#--scenario=}; shift ;;
	-h|--help) sed -n '2,34p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
case "$ONLY" in
""|tern|postfix) ;;
*) echo "run.sh: --only takes tern or postfix" >&2; exit 2 ;;
esac
SERVERS="tern postfix"
[ -n "$ONLY" ] && SERVERS=$ONLY

# shellcheck disable=SC2034 # N_IDLE is read through ${!var} in run_all
if [ "$QUICK" = 1 ]; then
	N=${BENCH_N:-300}; N_BIG=${BENCH_N_BIG:-30}; RUNS=${BENCH_RUNS:-1}
	N_IDLE=${BENCH_N_IDLE:-2000}
else
	N=${BENCH_N:-2000}; N_BIG=${BENCH_N_BIG:-200}; RUNS=${BENCH_RUNS:-3}
	N_IDLE=${BENCH_N_IDLE:-10000}
fi
TIMEOUT=${BENCH_TIMEOUT:-120}
BUILD=${BUILD:-build}
TERN=$ROOT/$BUILD/tern
SOURCE=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink
TICK=$(getconf CLK_TCK)

# name | smtp-source options | message count variable | kind.  All from the
# issue: -l 5120 = 5 KiB bodies; -s = parallel sessions; without -d every
# message gets its own connection, with -d a session sends message after
# message.  kind "local": delivered into the Maildir; "relay": addressed to
# a remote domain that the server sends on to its own smtp-sink.
SCENARIOS=(
	"S=1|-s 1 -l 5120|N|local"
	"S=20|-s 20 -l 5120|N|local"
	"S=100|-s 100 -l 5120|N|local"
	"reuse S=20|-d -s 20 -l 5120|N|local"
	"1 MiB S=10|-s 10 -l 1048576|N_BIG|local"
	"relay to sink S=20|-s 20 -l 5120|N|relay"
	"idle connections|-|N_IDLE|idle"
)

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (privilege-separated tern, private Postfix)"

# --- dependencies -----------------------------------------------------------
# Debian's postfix with debconf "No configuration" installs the binaries
# (smtp-source, postfix, postconf) but writes no main.cf and starts nothing.
install_deps() {
	local need=""
	[ -x "$SOURCE" ] && [ -x /usr/sbin/postfix ] || need="$need postfix"
	[ -x /usr/bin/time ] || need="$need time"
	[ -n "$need" ] || return 0
	say "installing:$need"
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections
	# shellcheck disable=SC2086 # a list of packages
	DEBIAN_FRONTEND=noninteractive apt-get install -y $need >&2
}

ensure_user() {
	id -u "$1" >/dev/null 2>&1 ||
	    useradd --system --no-create-home --shell /usr/sbin/nologin "$1"
}

# --- process tree CPU -------------------------------------------------------
# CPU ticks (utime+stime+cutime+cstime) summed over ROOT and all its
# descendants.  Children that exited were reaped by their parent, whose
# cutime/cstime then hold their CPU, so before/after differences count the
# short-lived ones too (Postfix's smtpd/cleanup, tern's forks if any).
tree_ticks() {
	# A process may exit between the glob and the read: cat then fails,
	# which must not count as an error (pipefail).
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
	{
		pid = $1
		r = $0
		sub(/^.*\) /, "", r)	# drop "pid (comm) "; comm may hold spaces
		split(r, f, " ")	# f[k] is field k+2 of proc(5)
		ppid[pid] = f[2]
		t[pid] = f[12] + f[13] + f[14] + f[15]
	}
	END {
		for (p in ppid)
			kids[ppid[p]] = kids[ppid[p]] " " p
		n = 1; stack[1] = root; sum = 0
		while (n > 0) {
			p = stack[n--]
			sum += t[p]
			if (each)
				print p, t[p]
			k = split(kids[p], c, " ")
			for (i = 1; i <= k; i++)
				stack[++n] = c[i]
		}
		if (!each)
			print sum
	}' each="${2:-}"
}

# settle_memory: every run starts with the same kind of memory at hand. In
# this VM (virtio-balloon with free page reporting) memory that stayed free
# for a while has been handed back to the host, and the first touch of such
# a page costs about 10 us of the guest's CPU (dd of 400 MiB into new page
# cache: 0.95 s of system time; right after 400 MiB of files were deleted:
# 0.08 s). Without this a 1 MiB run paid it or not depending on what ran
# before it (tern 761, 779, then 302 msg/s; Postfix 221, 248, then 183).
# With it, three sequences of three runs each were even for both servers
# (tern 617-717, Postfix 227-253 msg/s). "1" drops only clean page cache
# (after the sync), not dentries or inodes.
settle_memory() {
	[ "${BENCH_DROP_CACHES:-1}" = 1 ] || return 0
	sync
	if ! (echo 1 >/proc/sys/vm/drop_caches) 2>/dev/null; then
		say "  (cannot drop the page cache, not root?: runs may differ by memory state)"
		BENCH_DROP_CACHES=0
	fi
}

# kthread_ticks BEFORE AFTER: CPU ticks of kernel threads between two
# `tree_ticks 2 each` lists ("pid ticks" lines), counted per thread: a
# kworker that exits in between takes its ticks with it, and a plain sum
# would go down (negative kernel-thread CPU, "other" load made up).
kthread_ticks() {
	awk 'NR == FNR { t0[$1] = $2; next } { d = $2 - ($1 in t0 ? t0[$1] : 0); if (d > 0) s += d } END { print s + 0 }' "$1" "$2"
}

# Busy and iowait jiffies of the whole machine (all CPUs), from /proc/stat.
machine_jiffies() {
	awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $6 }' /proc/stat
}

tree_pids() {
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '	# as above
	{ pid = $1; r = $0; sub(/^.*\) /, "", r); split(r, f, " "); pp[pid] = f[2] }
	END {
		for (p in pp) kids[pp[p]] = kids[pp[p]] " " p
		n = 1; st[1] = root
		while (n > 0) {
			p = st[n--]; print p
			k = split(kids[p], c, " ")
			for (i = 1; i <= k; i++) st[++n] = c[i]
		}
	}'
}

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {	# port seconds
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

count_files() {	# dir: sets COUNT to its number of entries, without forking
	local f=("$1"/*)
	COUNT=0
	[ -e "${f[0]}" ] && COUNT=${#f[@]}
	return 0
}

# Sleep 10 ms without forking sleep(1): a read that times out on a pipe
# nobody writes to.  Keeps the harness's own CPU out of the measurement.
exec {NAP_FD}<> <(:)
nap() {
	read -r -t 0.01 -u "$NAP_FD" _ || true
}

# --- sinks ------------------------------------------------------------------
# Each server relays to its own smtp-sink (accepts and discards, no disk),
# started before the server and kept for the whole bench.  -c makes it print
# its counters ("sess=N quit=N mesg=N", CR between updates) on stdout at
# every "." and session end: mesg counts every message whose data ended,
# which is exact and costs no file per message (-d would).
declare -A S_SINKPORT S_SINKPID S_SINKOUT
SINK_PIDS=""
start_sink() {	# server
	local port out=$WORK/sink.$1.out
	port=$(free_port)
	"$SINK" -u nobody -c "127.0.0.1:$port" 1024 >"$out" 2>&1 &
	S_SINKPID[$1]=$!
	SINK_PIDS="$SINK_PIDS $!"
	S_SINKPORT[$1]=$port
	S_SINKOUT[$1]=$out
	wait_port "$port" 10 || die "smtp-sink did not listen on $port"
}

sink_count() {	# server: sets COUNT to the sink's message counter
	local t
	t=$(tail -c 80 "${S_SINKOUT[$1]}")
	t=${t##*mesg=}
	t=${t%%[!0-9]*}
	COUNT=${t:-0}
}

stop_sinks() {
	local p
	for p in $SINK_PIDS; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	SINK_PIDS=""
}

# --- tern -------------------------------------------------------------------
# Per server: port, PID of the top process, Maildir, queue folders, log,
# and the port on which it relays (tern: a submission listener; Postfix:
# the same smtpd, which relays for mynetworks).
declare -A S_PORT S_PID S_MAILDIR S_SPOOL S_LOG S_RPORT

TERN_PID=""
start_tern() {
	local d=$WORK/tern
	mkdir -p "$d/spool" "$d/mail"
	chown vmail:vmail "$d/mail"	# deliver_user writes the Maildirs
	echo 'bench:{PLAIN}x' >"$d/users.passwd"
	TERN_PORT=$(free_port)
	TERN_RPORT=$(free_port)
	start_sink tern
	# Postfix here checks no SPF, DKIM or DMARC: tern neither (auth_checks
	# is on by default for mx listeners), so both do the same job. No DNS
	# query may leave the machine: the resolver is a closed port on
	# loopback (routes are given by address).
	# Relay: a submission listener (no auth block, so 127.0.0.0/8 is a
	# trusted network and may relay) and a route to the sink; the relay
	# settings are tern's defaults (10 connections to one destination,
	# each reused for up to 100 messages).
	cat >"$d/tern.conf" <<-EOF
	hostname bench.example
	spool $d/spool
	workers ${BENCH_TERN_WORKERS:-0}
	listen 127.0.0.1:$TERN_PORT { mode mx }
	listen 127.0.0.1:$TERN_RPORT { mode submission }
	limits { connections 15000; connections_per_ip 15000; message_size 50M }
	domain localhost { users users.passwd; maildir $d/mail/%d/%u }
	route sink.example { via 127.0.0.1:${S_SINKPORT[tern]} }
	auth_checks off
	dns_server 127.0.0.1@9
	EOF
	"$TERN" -n -f "$d/tern.conf" >&2 || die "tern rejects its config"
	# Started with the usual soft descriptor limit of 1024 (the hard one
	# as it is): tern raises it itself, as it must to hold 10,000 clients.
	(ulimit -Sn 1024 && exec "$TERN" -d -f "$d/tern.conf") >>"$d/tern.log" 2>&1 &
	TERN_PID=$!
	wait_port "$TERN_PORT" 10 || die "tern did not listen on $TERN_PORT (see $d/tern.log)"
	S_PORT[tern]=$TERN_PORT
	S_RPORT[tern]=$TERN_RPORT
	S_PID[tern]=$TERN_PID
	S_MAILDIR[tern]=$d/mail/localhost/bench
	S_SPOOL[tern]="$d/spool/queue"
	S_LOG[tern]=$d/tern.log
}

stop_tern() {
	[ -n "$TERN_PID" ] || return 0
	local pids i
	pids=$(tree_pids "$TERN_PID")
	kill -TERM "$TERN_PID" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$TERN_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$TERN_PID" 2>/dev/null || true
	wait "$TERN_PID" 2>/dev/null || true
	for p in $pids; do	# the same children, by PID, if any outlived it
		[ "$p" = "$TERN_PID" ] && continue
		if kill -0 "$p" 2>/dev/null; then
			say "tern child $p outlived the parent; killing it"
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	TERN_PID=""
}

# --- private Postfix --------------------------------------------------------
# A second Postfix instance that shares nothing with /etc/postfix but the
# binaries (daemon_directory) and meta files (meta_directory: postfix-files,
# post-install, dynamicmaps.cf, which are only read):
#  1. config_directory PC holds our own main.cf and a minimal master.cf;
#     queue_directory and data_directory are fresh folders next to it.  Every
#     postfix/postconf command gets `-c PC`, so nothing reads /etc/postfix.
#     (alternate_config_directories is needed only by the set-gid commands
#     postdrop/postqueue, which this bench never runs.)
#  2. Every service runs without chroot (chroot column "n"): Debian's default
#     "y" would need copies of /etc/hosts, resolv.conf, ... in the queue dir.
#  3. The work folder must be traversable by the postfix user (mode 755).
#  4. `postfix -c PC check` runs post-install create-missing, which makes the
#     queue subfolders owned by mail_owner (postfix) and the data_directory,
#     and reports permission problems; then `postfix -c PC start`.
#  5. Delivery is virtual(8) into Maildir (a trailing "/" in
#     virtual_mailbox_maps means Maildir) as the vmail uid, like tern's
#     deliver_user; localhost is only in virtual_mailbox_domains, not in
#     mydestination (Postfix forbids both).
#  6. Non-local mail would fail (default_transport = error), so nothing
#     leaves the machine; logging goes to a file through postlogd
#     (maillog_file; its folder has to be allowed by maillog_file_prefixes).
#  7. Durability and process limits are Postfix's defaults (cleanup fsyncs
#     the queue file before the 250; default_process_limit 100); only the
#     per-client connection limit is raised, as for tern.
PF_UP=""
PF_MASTER=""
start_postfix() {
	local d=$WORK/postfix
	local pc=$d/etc
	mkdir -p "$pc" "$d/mail" "$d/log" "$d/queue"	# queue: root, 755
	chown vmail:vmail "$d/mail"
	PF_PORT=$(free_port)
	start_sink postfix
	cat >"$pc/main.cf" <<-EOF
	compatibility_level = 3.6
	queue_directory = $d/queue
	data_directory = $d/data
	mail_owner = postfix
	setgid_group = postdrop
	myhostname = postfix.bench.example
	mydomain = bench.example
	myorigin = \$myhostname
	inet_interfaces = 127.0.0.1
	inet_protocols = ipv4
	mynetworks = 127.0.0.0/8
	mydestination =
	alias_maps =
	alias_database =
	biff = no
	append_dot_mydomain = no
	virtual_mailbox_domains = localhost
	virtual_mailbox_base = $d/mail
	virtual_mailbox_maps = texthash:$pc/vmailbox
	virtual_uid_maps = static:$(id -u vmail)
	virtual_gid_maps = static:$(id -g vmail)
	message_size_limit = 52428800
	virtual_mailbox_limit = 0
	smtpd_client_connection_count_limit = 15000
	default_transport = error:bench instance delivers locally only
	relay_transport = error:bench instance delivers locally only
	transport_maps = texthash:$pc/transport
	syslog_name = postfix-bench
	maillog_file = $d/log/postfix.log
	maillog_file_prefixes = $d/log
	EOF
	echo "bench@localhost localhost/bench/" >"$pc/vmailbox"
	# Relay (8): sink.example goes to the sink, nothing else can leave.
	# Clients in mynetworks may relay (smtpd_relay_restrictions' default
	# permit_mynetworks).  smtp(8) keeps its defaults (20 connections per
	# destination, connection cache on demand).
	echo "sink.example smtp:[127.0.0.1]:${S_SINKPORT[postfix]}" >"$pc/transport"
	# type private unpriv chroot wakeup maxproc command (see master(5))
	cat >"$pc/master.cf" <<-EOF
	127.0.0.1:$PF_PORT inet n - n - - smtpd
	pickup    unix  n - n 60    1 pickup
	cleanup   unix  n - n -     0 cleanup
	qmgr      unix  n - n 300   1 qmgr
	rewrite   unix  - - n -     - trivial-rewrite
	bounce    unix  - - n -     0 bounce
	defer     unix  - - n -     0 bounce
	trace     unix  - - n -     0 bounce
	verify    unix  - - n -     1 verify
	flush     unix  n - n 1000? 0 flush
	proxymap  unix  - - n -     - proxymap
	showq     unix  n - n -     - showq
	error     unix  - - n -     - error
	retry     unix  - - n -     - error
	discard   unix  - - n -     - discard
	virtual   unix  - n n -     - virtual
	smtp      unix  - - n -     - smtp
	anvil     unix  - - n -     1 anvil
	scache    unix  - - n -     1 scache
	postlog   unix-dgram n - n - 1 postlogd
	EOF
	# Postfix logs to maillog_file even from `postfix check`: show it on error.
	postfix -c "$pc" check >&2 ||
	    { tail -5 "$d/log/postfix.log" >&2; die "postfix check failed"; }
	PF_CONF=$pc
	postfix -c "$pc" start >&2 ||
	    { tail -5 "$d/log/postfix.log" >&2; die "postfix start failed"; }
	PF_UP=1
	wait_port "$PF_PORT" 10 || die "postfix did not listen on $PF_PORT"
	local i
	for ((i = 0; i < 50; i++)); do
		[ -s "$d/queue/pid/master.pid" ] && break
		sleep 0.1
	done
	PF_MASTER=$(tr -d ' \n' <"$d/queue/pid/master.pid")
	S_PORT[postfix]=$PF_PORT
	S_RPORT[postfix]=$PF_PORT
	S_PID[postfix]=$PF_MASTER
	S_MAILDIR[postfix]=$d/mail/localhost/bench
	S_SPOOL[postfix]="$d/queue/incoming $d/queue/active $d/queue/deferred $d/queue/maildrop"
	S_LOG[postfix]=$d/log/postfix.log
}

stop_postfix() {
	[ -n "$PF_UP" ] || return 0
	postfix -c "$PF_CONF" stop >&2 || postfix -c "$PF_CONF" abort >&2 || true
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$PF_MASTER" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$PF_MASTER" 2>/dev/null; then
		postfix -c "$PF_CONF" abort >&2 || true
	fi
	PF_UP=""
}

LOADGEN_PID=""
cleanup() {	# [exit status]
	local rc=${1:-$?}
	trap - EXIT INT TERM HUP
	if [ -n "$LOADGEN_PID" ]; then
		# /usr/bin/time and its smtp-source child, by PID
		local lg
		lg=$(tree_pids "$LOADGEN_PID")
		# shellcheck disable=SC2086 # a list of PIDs
		kill -TERM $lg 2>/dev/null || true
		wait "$LOADGEN_PID" 2>/dev/null || true
	fi
	stop_tern
	stop_postfix
	stop_sinks
	if [ -n "${WORK:-}" ] && [ "$KEEP" = 0 ] && [ "$rc" = 0 ]; then
		rm -rf "$WORK"
	elif [ -n "${WORK:-}" ]; then
		say "work folder kept: $WORK"
	fi
	exit "$rc"
}

# --- one run ----------------------------------------------------------------
spool_empty() {	# server
	local dir
	for dir in ${S_SPOOL[$1]}; do
		[ -d "$dir" ] || continue
		[ -n "$(find "$dir" -type f -print -quit)" ] && return 1
	done
	return 0
}

# Messages that arrived so far: files in Maildir/new for "local", the
# sink's counter minus BASE for "relay".  Sets COUNT.
arrived() {	# server kind base
	if [ "$2" = relay ]; then
		sink_count "$1"
		COUNT=$((COUNT - $3))
	else
		count_files "${S_MAILDIR[$1]}/new"
	fi
}

# run_one SERVER NAME "OPTS" COUNT RUN KIND: appends one line to $RAW:
# server scenario run n msg/s server-CPU/1000 loadgen-CPU/1000 wall busy%
# iowait% other% kthreads-CPU/1000 sink-CPU/1000 status ("ok" or what went
# wrong)
run_one() {
	local server=$1 name=$2 opts=$3 n=$4 run=$5 kind=$6
	local pid=${S_PID[$1]} md=${S_MAILDIR[$1]} port=${S_PORT[$1]}
	local rcpt=bench@localhost base=0 sk0=0 sk1=0 spid=${S_SINKPID[$1]:-}
	local c0 c1 k0 k1 m0 m1 t0 t1 got rc i status=ok deadline tf=$WORK/time.out
	local slog=$WORK/source.$server.$RANDOM.log
	# The last run's messages are moved aside, not deleted: on ext4 without
	# a journal every file create searches past the inodes deleted in the
	# last minutes (fs/ext4/ialloc.c, recently_deleted()), so deleting them
	# here would slow down the next run's deliveries, of either server.
	if [ -d "$md/new" ]; then
		mkdir -p "$WORK/delivered.$server"
		find "$md/new" "$md/cur" "$md/tmp" -type f -exec mv -t "$WORK/delivered.$server" {} +
	fi
	if [ "$kind" = relay ]; then
		rcpt=bench@sink.example
		port=${S_RPORT[$server]}
		sink_count "$server"
		base=$COUNT
	fi
	sync
	[ -n "$spid" ] && sk0=$(tree_ticks "$spid")
	settle_memory
	c0=$(tree_ticks "$pid")
	tree_ticks 2 each >"$WORK/kthreads.0"	# kthreadd's children: jbd2, kworkers (I/O)
	m0=$(machine_jiffies)
	t0=$EPOCHREALTIME
	rc=0
	# In the background so that a signal reaches our trap at once (bash
	# runs traps only between commands) and cleanup can stop it by PID.
	# shellcheck disable=SC2086 # opts is a list of options
	/usr/bin/time -f '%U %S' -o "$tf" \
	    "$SOURCE" -c $opts -m "$n" -f bench@bench.example -t "$rcpt" \
	    "127.0.0.1:$port" >/dev/null 2>"$slog" &
	LOADGEN_PID=$!
	wait "$LOADGEN_PID" || rc=$?
	LOADGEN_PID=""
	# smtp-source stops at the first unexpected reply: then not all
	# messages were sent, and waiting the whole TIMEOUT would be pointless.
	if [ "$rc" = 0 ]; then
		deadline=$(( ${EPOCHREALTIME%.*} + TIMEOUT ))
	else
		deadline=$(( ${EPOCHREALTIME%.*} + 10 ))
	fi
	while :; do
		arrived "$server" "$kind" "$base"
		got=$COUNT
		[ "$got" -ge "$n" ] && break
		if [ "${EPOCHREALTIME%.*}" -ge "$deadline" ]; then
			status="LOST:$got/$n"
			break
		fi
		nap
	done
	t1=$EPOCHREALTIME
	m1=$(machine_jiffies)
	# CPU after the spool drained too (tern removes the queue files after
	# delivery, Postfix's qmgr likewise), so that work is counted.
	for ((i = 0; i < 200; i++)); do
		spool_empty "$server" && break
		sleep 0.05
	done
	sleep 0.2
	c1=$(tree_ticks "$pid")
	tree_ticks 2 each >"$WORK/kthreads.1"
	k0=0
	k1=$(kthread_ticks "$WORK/kthreads.0" "$WORK/kthreads.1")
	[ -n "$spid" ] && sk1=$(tree_ticks "$spid")
	[ "$rc" = 0 ] || status="source-exit-$rc;$status"
	if [ -s "$slog" ]; then
		say "  smtp-source said: $(head -c 300 "$slog" | tr '\n' ' ')"
		[ "$status" = ok ] && status="source-stderr"
	fi
	/usr/bin/python3 - "$server" "$name" "$run" "$n" "$t0" "$t1" "$c0" "$c1" \
	    "$TICK" "$m0" "$m1" "$(nproc)" "$status" "$(tail -1 "$tf")" "$k0" "$k1" \
	    "$kind" "$sk0" "$sk1" >>"$RAW" <<-'EOF'
	import sys
	(server, name, run, n, t0, t1, c0, c1, tick, m0, m1, ncpu, status,
	 lg, k0, k1, kind, sk0, sk1) = sys.argv[1:]
	n = int(n); tick = int(tick); ncpu = int(ncpu)
	wall = float(t1) - float(t0)
	srv = (int(c1) - int(c0)) / tick
	kth = (int(k1) - int(k0)) / tick
	# The sink is a load generator too (the receiving end), counted only
	# where it is used.
	snk = (int(sk1) - int(sk0)) / tick if kind == "relay" else 0.0
	b0, w0 = map(int, m0.split()); b1, w1 = map(int, m1.split())
	busy = 100.0 * (b1 - b0) / tick / wall / ncpu
	iow = 100.0 * (w1 - w0) / tick / wall / ncpu
	try:
	    u, s = lg.split()
	    lgc = float(u) + float(s)
	except ValueError:
	    lgc = float("nan")
	# CPU of everything else on the machine (other users' jobs), as a
	# share of all CPUs: a busy neighbour makes the run meaningless.
	# Kernel threads mostly do the servers' I/O, so they are not "other".
	other = (b1 - b0) / tick - srv - kth - snk - (lgc if lgc == lgc else 0)
	other = max(0.0, other)
	other = 100.0 * other / wall / ncpu
	print("\t".join([server, name, run, str(n), "%.1f" % (n / wall),
	    "%.3f" % (srv * 1000 / n), "%.3f" % (lgc * 1000 / n),
	    "%.2f" % wall, "%.0f" % busy, "%.0f" % iow, "%.0f" % other,
	    "%.3f" % (kth * 1000 / n),
	    "%.3f" % (snk * 1000 / n) if kind == "relay" else "-", status]))
	EOF
	tail -1 "$RAW" | awk -F'\t' '{ printf "  %-8s %-12s run %s: %8s msg/s  server %6s CPU-s/1000  loadgen %6s CPU-s/1000  sink %s CPU-s/1000  wall %ss  machine busy %s%% iowait %s%% other %s%% kthreads %s CPU-s/1000  %s\n", $1, $2, $3, $5, $6, $7, $13, $8, $9, $10, $11, $12, $14 }' >&2
}

# run_idle SERVER N RUN: N connections greeted, EHLO'd and held idle by
# bench/idle.py, which measures the server's PSS and a new client's wait for
# its greeting meanwhile; appends "server run key=value..." to $IDLE_RAW.
run_idle() {
	local server=$1 n=$2 run=$3 line
	line=$(/usr/bin/python3 "$ROOT/bench/idle.py" "${S_PORT[$server]}" "$n" \
	    "${S_PID[$server]}" "${BENCH_IDLE_HOLD:-0}") || die "idle.py failed"
	printf '%s\t%s\t%s\n' "$server" "$run" "$line" >>"$IDLE_RAW"
	say "  $server idle run $run: $line"
}

# Log lines that mean something went wrong (tern logs a temporary delivery
# failure at level info, so its events are named too).
BAD_LOG='level=(warn|error|crit)|event=(tempfail|deferred|bounced?|failed)|warning:|fatal:|panic:|status=(deferred|bounced)'

check_log() {	# server
	local warn
	warn=$(grep -c -E "$BAD_LOG" "${S_LOG[$1]}" || true)
	say "$1 log: $warn warning/error/deferral lines (${S_LOG[$1]})"
	grep -E "$BAD_LOG" "${S_LOG[$1]}" | head -5 >&2 || true
}

# Servers take turns run by run, so that a change in the machine's
# background load hits both alike; the idle one costs nothing meanwhile.
run_all() {
	local s sc name opts var n r
	for s in $SERVERS; do
		"start_$s"
	done
	for sc in "${SCENARIOS[@]}"; do
		IFS='|' read -r name opts var kind <<<"$sc"
		n=${!var}
		[ -z "$PICK" ] || [[ "$name" == *"$PICK"* ]] || continue
		for ((r = 1; r <= RUNS; r++)); do
			for s in $SERVERS; do
				if [ "$kind" = idle ]; then
					# A fresh server: memory freed after the
					# earlier scenarios (or runs) stays in the
					# processes' heaps and would hide what the
					# connections cost; Postfix's smtpd from
					# the last run would still be counted.
					"stop_$s"
					"start_$s"
					run_idle "$s" "$n" "$r"
					continue
				fi
				run_one "$s" "$name" "$opts" "$n" "$r" "$kind"
			done
		done
	done
	for s in $SERVERS; do
		check_log "$s"
		"stop_$s"
	done
}

# --- report -----------------------------------------------------------------
report() {
	/usr/bin/python3 - "$RAW" "$SERVERS" <<-'EOF'
	import sys, statistics
	raw, servers = sys.argv[1], sys.argv[2].split()
	rows = [l.rstrip("\n").split("\t") for l in open(raw) if l.strip()]
	if not rows:
	    sys.exit(0)
	order, res = [], {}
	for srv, name, run, n, rate, cpu, lg, wall, busy, iow, oth, kth, snk, st in rows:
	    if name not in order:
	        order.append(name)
	    r = res.setdefault((srv, name), {"rate": [], "cpu": [], "lg": [],
	        "busy": [], "oth": [], "kth": [], "snk": [], "bad": [], "n": n})
	    r["rate"].append(float(rate)); r["cpu"].append(float(cpu))
	    r["lg"].append(float(lg)); r["busy"].append(float(busy))
	    r["oth"].append(float(oth)); r["kth"].append(float(kth))
	    if snk != "-":
	        r["snk"].append(float(snk))
	    if st != "ok":
	        r["bad"].append(st)
	def med(srv, name, k):
	    r = res.get((srv, name))
	    return statistics.median(r[k]) if r and r[k] else None
	def f(v, fmt):
	    return "-" if v is None else fmt % v
	def ratio(a, b):
	    return "-" if a is None or b is None or b == 0 else "%.2f" % (a / b)
	both = "tern" in servers and "postfix" in servers
	hdr = ["scenario", "msgs"]
	for s in servers:
	    hdr += ["%s msg/s" % s]
	if both:
	    hdr += ["ratio"]
	for s in servers:
	    hdr += ["%s CPU s/1000" % s]
	if both:
	    hdr += ["CPU ratio"]
	hdr += ["loadgen CPU s/1000 (%s)" % "/".join(servers),
	    "sink CPU s/1000 (%s)" % "/".join(servers),
	    "kernel threads CPU s/1000 (%s)" % "/".join(servers),
	    "machine busy %% (%s)" % "/".join(servers),
	    "other load %% (%s)" % "/".join(servers)]
	print("| " + " | ".join(hdr) + " |")
	print("|" + "---|" * len(hdr))
	notes = []
	for name in order:
	    n = next(res[(s, name)]["n"] for s in servers if (s, name) in res)
	    row = [name, n]
	    for s in servers:
	        bad = res.get((s, name), {}).get("bad")
	        row.append(f(med(s, name, "rate"), "%.1f") + (" (!)" if bad else ""))
	        if bad:
	            notes.append("%s %s: %s" % (s, name, ", ".join(bad)))
	    if both:
	        row.append(ratio(med("tern", name, "rate"), med("postfix", name, "rate")))
	    for s in servers:
	        row.append(f(med(s, name, "cpu"), "%.3f"))
	    if both:
	        row.append(ratio(med("tern", name, "cpu"), med("postfix", name, "cpu")))
	    row.append(" / ".join(f(med(s, name, "lg"), "%.3f") for s in servers))
	    row.append(" / ".join(f(med(s, name, "snk"), "%.3f") for s in servers))
	    row.append(" / ".join(f(med(s, name, "kth"), "%.3f") for s in servers))
	    row.append(" / ".join(f(med(s, name, "busy"), "%.0f") for s in servers))
	    row.append(" / ".join(f(med(s, name, "oth"), "%.0f") for s in servers))
	    print("| " + " | ".join(row) + " |")
	print()
	print("ratio = tern / postfix (higher is better for msg/s, lower for CPU);"
	    " median of %d run(s)." % max(len(r["rate"]) for r in res.values()))
	for nt in notes:
	    print("(!) " + nt)
	EOF
	report_idle
}

# Medians per server of the idle connection runs.
report_idle() {
	/usr/bin/python3 - "$IDLE_RAW" "$SERVERS" <<-'EOF'
	import sys, statistics
	raw, servers = sys.argv[1], sys.argv[2].split()
	runs = {}
	for l in open(raw):
	    if not l.strip():
	        continue
	    srv, run, kv = l.rstrip("\n").split("\t")
	    runs.setdefault(srv, []).append(dict(x.split("=", 1) for x in kv.split()))
	if not runs:
	    sys.exit(0)
	def med(rs, k, fmt="%d"):
	    v = [float(r[k]) for r in rs if r[k] not in ("timeout", "")]
	    return fmt % statistics.median(v) if v else "timeout"
	print()
	print("| server | connections | greeted | EHLO answered | still open after | PSS MiB before | PSS MiB held (processes) | bytes per greeted connection | new client's greeting ms | open+greet all s | client CPU s |")
	print("|---|---|---|---|---|---|---|---|---|---|---|")
	for s in servers:
	    rs = runs.get(s)
	    if not rs:
	        continue
	    pss = statistics.median(int(r["pss_kib"]) for r in rs)
	    base = statistics.median(int(r["pss_base_kib"]) for r in rs)
	    print("| %s | %s | %s | %s | %s | %.1f | %.1f (%s) | %s | %s | %s | %s |" % (
	        s, rs[0]["n"], med(rs, "greeted"), med(rs, "ehlo"),
	        med(rs, "open_after"), base / 1024.0, pss / 1024.0,
	        med(rs, "nproc"), med(rs, "per_conn_bytes"),
	        med(rs, "probe_median_ms", "%.1f"), med(rs, "open_s", "%.2f"),
	        med(rs, "client_cpu_s", "%.2f")))
	print()
	print("Median of %d run(s); PSS of all the server's processes while the"
	    " connections are held (tern's includes its queue, deliver and mta"
	    " processes; Postfix's its master, smtpd and the other daemons)."
	    % max(len(r) for r in runs.values()))
	EOF
}

# --- main -------------------------------------------------------------------
install_deps
ensure_user _tern
ensure_user vmail
if [ -s /var/spool/postfix/pid/master.pid ] &&
    kill -0 "$(tr -d ' ' </var/spool/postfix/pid/master.pid)" 2>/dev/null; then
	say "note: the system Postfix is running; it is left alone (it does not use our ports)"
fi
if [[ " $SERVERS " == *" tern "* ]]; then
	make -C "$ROOT" BUILD="$BUILD" "$BUILD/tern" >&2
fi

WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/tern-bench.XXXXXX")
chmod 755 "$WORK"	# _tern, vmail and postfix must traverse it
# Each server's folders in block groups of their own: on ext4 without a
# journal a file create searches past the inodes deleted in its group in the
# last minutes (recently_deleted(), see run_one), and Postfix deletes a
# queue file per message. Without this its runs made tern's next run slower
# (2000 files created and deleted beside a tern run: deliver CPU 160 ->
# 245-340 ms per 1000 messages). With +T (Orlov's top directory) ext4
# spreads WORK's subfolders over groups, so each server pays for its own
# deletions only.
chattr +T "$WORK" 2>/dev/null || say "note: chattr +T failed; the servers' folders may share block groups"
trap cleanup EXIT
trap 'cleanup 130' INT
trap 'cleanup 143' TERM
trap 'cleanup 129' HUP
RAW=$WORK/raw.tsv
IDLE_RAW=$WORK/idle.tsv
: >"$RAW"
: >"$IDLE_RAW"

say "bench: servers=[$SERVERS] runs=$RUNS n=$N n_big=$N_BIG work=$WORK"
say "machine: $(nproc) CPU, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
    "kernel $(uname -r), spool fs $(df -T "$WORK" | awk 'NR == 2 { print $2 }')," \
    "postfix $(postconf -dh mail_version)"
read -r load1 _ </proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
	say "warning: load average $load1 before the bench: other jobs share the CPUs" \
	    "(see the 'other load' column)"
fi
run_all
echo
report

