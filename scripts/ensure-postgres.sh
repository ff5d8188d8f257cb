#!/usr/bin/env bash
# The PostgreSQL the tests run against (the journal's conformance suite, farms on PostgreSQL, the
# standby takeover): installs Debian's server if there is none, starts it if it is not running, and
# creates the role and database the tests use (optimus_test, password optimus_test: a throwaway
# database on loopback). Idempotent. OPTIMUS_TEST_PG_URL names another server instead.
set -euo pipefail
if [ -n "${OPTIMUS_TEST_PG_URL:-}" ]; then
  psql "$OPTIMUS_TEST_PG_URL" -Atc "select 1" >/dev/null
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "installing Debian packages: postgresql"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  echo "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# As the server's superuser: over loopback where it trusts it, else through the local socket as the postgres user.
admin() {
  if psql -h 127.0.0.1 -U postgres -d postgres -w -Atc "select 1" >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -w -v ON_ERROR_STOP=1 -Atc "$1"
  else
    runuser -u postgres -- psql -d postgres -v ON_ERROR_STOP=1 -Atc "$1"
  fi
}
[ "$(admin "select 1 from pg_roles where rolname = 'optimus_test'")" = 1 ] ||
  admin "create role optimus_test login password 'optimus_test'"
[ "$(admin "select 1 from pg_database where datname = 'optimus_test'")" = 1 ] ||
  admin "create database optimus_test owner optimus_test"
psql "postgres://optimus_test:optimus_test@127.0.0.1:5432/optimus_test" -Atc "select 'PostgreSQL ready: ' || version()"
