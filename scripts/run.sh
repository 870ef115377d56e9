#!/usr/bin/env bash
# Starts tern in the foreground on the default configuration (etc/tern.conf):
# SMTP on 127.0.0.1:2525 for the domain "localhost", spool and Maildirs under
# run/ in this checkout. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
make -j"$(nproc)"
mkdir -p run
echo "run.sh: starting build/tern -d -f etc/tern.conf (mail lands in run/mail/localhost/USER/new/)"
exec build/tern -d -f etc/tern.conf
