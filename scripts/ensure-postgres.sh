#!/usr/bin/env bash
# Make PostgreSQL's server binaries available for the test suite's real-server tests.
# Installs Debian's package when missing and we are root; otherwise says why and exits 0
# (the suite then skips those tests and prints the reason).
set -u
if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: PostgreSQL server not installed and cannot install it (need root and apt-get)" >&2
    exit 0
fi
echo "ensure-postgres: installing PostgreSQL from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1
apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 \
    || echo "ensure-postgres: apt-get install postgresql failed" >&2
# Debian's package starts a cluster service; the tests run their own server.
command -v pg_ctlcluster >/dev/null 2>&1 && pg_ctlcluster --force 15 main stop >/dev/null 2>&1
exit 0
