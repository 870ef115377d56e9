#!/usr/bin/env bash
# Installs what tern needs to build, run and test on Debian, and creates the
# system users and the chroot folder the daemon uses when started as root.
# Idempotent: when everything is there already it only checks and returns.
set -euo pipefail

PACKAGES=(
	build-essential make pkg-config
	libevent-dev libssl-dev libunbound-dev libcrypt-dev
	libcmocka-dev python3-pytest swaks libnet-ssleay-perl libio-socket-ssl-perl postfix
	clang libclang-rt-14-dev
	procps iproute2 openssl time
	unbound libyaml-dev python3-yaml msmtp libpsl-dev publicsuffix python3-dkim python3-authres libseccomp-dev
	clang-tidy cppcheck valgrind
	opendkim-tools
	zlib1g-dev
)

is_root() { [ "$(id -u)" -eq 0 ]; }

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = "installed" ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
	if ! is_root; then
		echo "deps.sh: not root: cannot install missing packages: ${missing[*]}" >&2
		echo "deps.sh: run as root (sudo bash scripts/deps.sh) or install them yourself" >&2
		exit 1
	fi
	echo "deps.sh: installing: ${missing[*]}"
	# Postfix is installed only for its test tools (smtp-source, smtp-sink):
	# tell debconf not to configure or start a system mail server.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
	# unbound is a test peer only (a DNS server the tests start on a high
	# port): the system service it brings is not wanted.
	if printf '%s\n' "${missing[@]}" | grep -qx unbound && command -v systemctl >/dev/null; then
		systemctl disable --now unbound >/dev/null 2>&1 || true
	fi
fi

if ! is_root; then
	echo "deps.sh: not root: skipping the system users (_tern, vmail) and /var/empty;" \
	     "tern then runs as the invoking user without privilege separation" >&2
	exit 0
fi

# The smtp workers run as _tern chrooted into /var/empty; deliveries run as vmail.
for u in _tern vmail; do
	if ! getent passwd "$u" >/dev/null; then
		echo "deps.sh: creating system user $u"
		useradd --system --no-create-home --shell /usr/sbin/nologin "$u"
	fi
done

if [ ! -d /var/empty ]; then
	echo "deps.sh: creating /var/empty"
	install -d -m 0755 -o root -g root /var/empty
fi
