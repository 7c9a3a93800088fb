#!/bin/sh
# What the test suite needs that pip cannot install, on a Debian machine: the
# PostgreSQL server binaries (the replica tests run initdb, pg_ctl, pg_basebackup),
# PostgreSQL, MariaDB and Redis running on 127.0.0.1, and Debian's chromium (the
# Studio's browser test). Installs what is missing with apt-get (as root, or through
# sudo), starts what is down, and fails when a server still cannot be reached.
# README command 2 runs it first; .ci/run runs README command 2.
#
#   sh tools/test-servers.sh           install and start what is missing
#   sh tools/test-servers.sh --check   change nothing; exit 1 listing what is missing
set -eu

check_only=false
[ "${1:-}" = "--check" ] && check_only=true

if [ "$(id -u)" = 0 ]; then as_root=""; else as_root="sudo"; fi
updated=false
install() {  # install Debian packages, after one apt-get update
  if ! $updated; then
    $as_root apt-get update -q
    updated=true
  fi
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -q "$@"
}
wait_for() {  # wait up to 30 s for a check to pass
  for _ in $(seq 1 30); do "$@" && return 0; sleep 1; done
  return 1
}
missing=""
need() {  # in --check mode, note what is missing; else install it
  if $check_only; then missing="$missing $1"; else echo "$1 is missing; installing it"; install "$2"; fi
}

# PostgreSQL: the server binaries and the machine's server at 127.0.0.1:5432.
if ! command -v initdb >/dev/null && ! [ -x "$(pg_config --bindir 2>/dev/null)/initdb" ] \
    && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need "PostgreSQL (server binaries)" postgresql
fi
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_up; then
  if $check_only; then missing="$missing PostgreSQL(down)"; else
    echo "PostgreSQL is down; starting it"
    $as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -n 1)" main start || true
    wait_for pg_up || { echo "FAIL: PostgreSQL is not reachable at 127.0.0.1:5432" >&2; exit 1; }
  fi
fi

# Redis at 127.0.0.1:6379 (redis-server and redis-cli also start the tests' own cluster).
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  need "Redis" redis-server
fi
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
if ! $check_only && ! redis_up; then
  echo "Redis is down; starting it"
  $as_root mkdir -p /var/lib/redis /var/log/redis
  $as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/tests.log || true
  wait_for redis_up || { echo "FAIL: Redis is not reachable at 127.0.0.1:6379" >&2; exit 1; }
elif ! redis_up; then
  missing="$missing Redis(down)"
fi

# MariaDB at 127.0.0.1:3306, root without a password over TCP.
if ! command -v mariadbd >/dev/null && ! [ -x /usr/sbin/mariadbd ]; then
  need "MariaDB" mariadb-server
fi
mariadb_up() { mariadb-admin -h 127.0.0.1 -P 3306 -u root --connect-timeout=2 ping >/dev/null 2>&1; }
if ! $check_only && ! mariadb_up; then
  echo "MariaDB is down (or refuses root over TCP); starting it"
  $as_root service mariadb start || {
    $as_root mkdir -p /run/mysqld && $as_root chown mysql:mysql /run/mysqld
    ($as_root mysqld_safe --user=mysql --bind-address=127.0.0.1 >/dev/null 2>&1 &)
  } || true
  wait_for $as_root mariadb-admin -u root --connect-timeout=2 ping >/dev/null 2>&1 || true
  # A fresh Debian install lets root in through the unix socket only: allow TCP too.
  mariadb_up || $as_root mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA \
unix_socket OR mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES" || true
  mariadb_up || { echo "FAIL: MariaDB is not reachable at 127.0.0.1:3306 as root" >&2; exit 1; }
elif ! mariadb_up; then
  missing="$missing MariaDB(down)"
fi

# The Studio's browser test drives Debian's chromium (never a downloaded build).
if [ ! -x /usr/bin/chromium ]; then
  need "chromium" chromium
fi

if [ -n "$missing" ]; then
  echo "missing:$missing (run: sh tools/test-servers.sh)" >&2
  exit 1
fi
echo "test servers: PostgreSQL, Redis and MariaDB up; chromium installed"
