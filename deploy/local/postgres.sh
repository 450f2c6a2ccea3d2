#!/usr/bin/env bash
# deploy/local/postgres.sh: a project-local PostgreSQL cluster for `make run`,
# `make test` and `make bench`. One cluster per checkout.
#
#   postgres.sh start          initdb if needed, start (a running cluster is reused),
#                              create database "switchyard" if missing
#   postgres.sh stop           stop this checkout's cluster (pg_ctl, by its data dir)
#   postgres.sh status         print state, port, paths; exit 0 running, 3 stopped
#   postgres.sh url [DB]       print the postgres:// URL (DB defaults to switchyard)
#   postgres.sh createdb NAME  (re)create an empty database NAME, print its URL
#   postgres.sh psql [ARGS]    open psql on the switchyard database
#   postgres.sh destroy        stop the cluster and delete it (data and all)
#
# Where the cluster lives, and why:
#   PostgreSQL refuses to run as root, so the server runs as the `postgres` user,
#   which must be able to reach its data and socket directories. A checkout can be
#   anywhere (CI clones into arbitrary folders, e.g. under /root, mode 700), and
#   chmod-ing a user's parent directories is not ours to do. A unix socket path
#   must also stay under ~107 bytes, which a deep checkout path can exceed. So the
#   cluster always lives in a short directory owned by postgres,
#       /var/tmp/switchyard-pg-<first 12 hex of sha256(checkout path)>/
#           data/   the cluster (PGDATA)      run/   the unix socket
#           postgres.log
#   and $REPO/.local/pg is a symlink to it, so the checkout still "has" its cluster.
#   /var/tmp survives reboots (unlike /tmp on Debian); if it was cleaned anyway,
#   start simply runs initdb again. The hash keeps checkouts apart.
#
# Port: SWITCHYARD_PG_PORT if set (an error if it is taken), otherwise the port
# this checkout used last (.local/pg-port), otherwise 55432; when that is taken
# by something else (say another checkout's cluster) the next free port is chosen
# and remembered in .local/pg-port.
#
# Authentication is `trust` on the unix socket and on 127.0.0.1 only: this is a
# development/test cluster for this machine, never listening on other addresses.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
LOCAL="$REPO/.local"
HASH="$(printf '%s' "$REPO" | sha256sum | cut -c1-12)"
ROOT="${SWITCHYARD_PG_ROOT:-/var/tmp/switchyard-pg-$HASH}"
DATA="$ROOT/data"
SOCK="$ROOT/run"
LOG="$ROOT/postgres.log"
PORT_FILE="$LOCAL/pg-port"
DEFAULT_PORT=55432
DB=switchyard
PGUSER_NAME=postgres

die() { echo "postgres.sh: $*" >&2; exit 1; }
say() { echo "postgres.sh: $*" >&2; }

# find_bin: the newest installed PostgreSQL's bin directory (15 on Debian 12).
find_bin() {
	local d
	d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
	[ -n "$d" ] && [ -x "$d/initdb" ] ||
		die "no PostgreSQL server found under /usr/lib/postgresql (run deploy/local/deps.sh)"
	echo "$d"
}
BIN="$(find_bin)"

# as_pg runs a command as the server's user: `postgres` when we are root, else
# ourselves. It starts from / because initdb and pg_ctl fail when the current
# directory (the checkout) is not readable by that user. It closes fd 9, the
# lock, so that the server pg_ctl starts does not hold the lock forever.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u "$PGUSER_NAME" -- "$@" 9>&-)
	else
		(cd / && "$@" 9>&-)
	fi
}

# owner is the user the cluster's directories must belong to.
owner() {
	if [ "$(id -u)" -eq 0 ]; then echo "$PGUSER_NAME"; else id -un; fi
}

# prepare_dirs creates $ROOT (owned by the server's user, mode 700) and the
# .local/pg symlink. It refuses a $ROOT that someone else owns or that is a
# symlink, since /var/tmp is world-writable.
prepare_dirs() {
	local o
	o="$(owner)"
	mkdir -p "$LOCAL"
	if [ -L "$ROOT" ]; then die "$ROOT is a symlink; refusing to use it"; fi
	if [ ! -d "$ROOT" ]; then
		mkdir -m 700 "$ROOT"
		[ "$(id -u)" -ne 0 ] || chown "$o:$o" "$ROOT"
	fi
	[ "$(stat -c %U "$ROOT")" = "$o" ] || die "$ROOT belongs to $(stat -c %U "$ROOT"), not $o; remove it"
	as_pg mkdir -p -m 700 "$DATA" "$SOCK"
	if [ -L "$LOCAL/pg" ] || [ ! -e "$LOCAL/pg" ]; then
		ln -sfn "$ROOT" "$LOCAL/pg"
	else
		say "warning: $LOCAL/pg is not a symlink; the cluster lives in $ROOT"
	fi
}

running() { [ -f "$DATA/PG_VERSION" ] && as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }

# running_port reads the port from postmaster.pid (4th line) of a running cluster.
running_port() { sed -n 4p "$DATA/postmaster.pid" 2>/dev/null; }

# port_in_use: is anything listening on 127.0.0.1:PORT (or a wildcard address)?
port_in_use() {
	if command -v ss >/dev/null; then
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# current_port: the port `url` should name.
current_port() {
	if running; then running_port
	elif [ -n "${SWITCHYARD_PG_PORT:-}" ]; then echo "$SWITCHYARD_PG_PORT"
	elif [ -s "$PORT_FILE" ]; then cat "$PORT_FILE"
	else echo "$DEFAULT_PORT"
	fi
}

# choose_port picks the port for a cluster about to start.
choose_port() {
	local p
	if [ -n "${SWITCHYARD_PG_PORT:-}" ]; then
		p="$SWITCHYARD_PG_PORT"
		[[ "$p" =~ ^[0-9]+$ ]] || die "SWITCHYARD_PG_PORT=$p is not a port number"
		if port_in_use "$p"; then
			die "port $p (SWITCHYARD_PG_PORT) is already in use, maybe by another checkout's cluster; see: ss -ltnp 'sport = :$p'"
		fi
		echo "$p"; return
	fi
	p="$DEFAULT_PORT"
	[ -s "$PORT_FILE" ] && p="$(cat "$PORT_FILE")"
	local first="$p"
	while port_in_use "$p"; do
		p=$((p + 1))
		[ "$p" -lt $((first + 100)) ] || die "no free port in $first..$p"
	done
	[ "$p" = "$first" ] || say "port $first is in use (another checkout's cluster?); using $p"
	echo "$p"
}

url_for() { echo "postgres://$PGUSER_NAME@127.0.0.1:$(current_port)/$1?sslmode=disable"; }

psql_admin() {
	as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$(running_port)" -U "$PGUSER_NAME" -d postgres "$@"
}

ensure_db() {
	local name="$1"
	if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]; then
		psql_admin -c "CREATE DATABASE \"$name\""
		say "created database $name"
	fi
}

# lock serialises start/stop/createdb between concurrent callers (parallel
# `make test` runs of the same checkout).
lock() {
	mkdir -p "$LOCAL"
	exec 9>"$LOCAL/pg.flock"
	flock -w 300 9 || die "timed out waiting for $LOCAL/pg.flock"
}

cmd_start() {
	lock
	prepare_dirs
	if running; then
		local p
		p="$(running_port)"
		if [ -n "${SWITCHYARD_PG_PORT:-}" ] && [ "$SWITCHYARD_PG_PORT" != "$p" ]; then
			die "the cluster is already running on port $p, not $SWITCHYARD_PG_PORT; run '$0 stop' first"
		fi
		echo "$p" >"$PORT_FILE"
		ensure_db "$DB"
		say "already running on port $p ($DATA)"
		return
	fi
	if [ ! -f "$DATA/PG_VERSION" ]; then
		say "initdb $DATA"
		as_pg "$BIN/initdb" -D "$DATA" -U "$PGUSER_NAME" --auth=trust -E UTF8 --locale=C.UTF-8 >"$ROOT/initdb.log" 2>&1 ||
			{ cat "$ROOT/initdb.log" >&2; die "initdb failed"; }
		echo "include_if_exists = 'switchyard.conf'" | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
	fi
	local port
	port="$(choose_port)"
	# Rewritten at every start so a changed port or setting takes effect.
	as_pg tee "$DATA/switchyard.conf" >/dev/null <<-EOF
		# Written by deploy/local/postgres.sh at every start; edits are lost.
		port = $port
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$SOCK'
		max_connections = 300
	EOF
	# Socket dir may have been cleaned from under a stale cluster.
	as_pg mkdir -p -m 700 "$SOCK"
	if ! as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 >/dev/null; then
		tail -n 20 "$LOG" >&2 || true
		die "pg_ctl start failed (log: $LOG)"
	fi
	echo "$port" >"$PORT_FILE"
	ensure_db "$DB"
	say "started on port $port ($DATA)"
}

cmd_stop() {
	lock
	if ! running; then
		say "not running"
		return
	fi
	as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null
	say "stopped"
}

cmd_status() {
	if running; then
		echo "running  port $(running_port)  data $DATA  log $LOG"
		echo "url      $(url_for "$DB")"
	else
		echo "stopped  data $DATA (would use port $(current_port))"
		exit 3
	fi
}

cmd_createdb() {
	local name="${1:-}"
	[[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]] || die "usage: $0 createdb NAME (letters, digits, _)"
	running || die "the cluster is not running; run '$0 start' first"
	lock
	PGOPTIONS='-c client_min_messages=warning' psql_admin -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" -c "CREATE DATABASE \"$name\""
	url_for "$name"
}

cmd_destroy() {
	cmd_stop
	[ -L "$ROOT" ] || rm -rf "$ROOT"
	[ ! -L "$LOCAL/pg" ] || rm -f "$LOCAL/pg"
	rm -f "$PORT_FILE"
	say "deleted $ROOT"
}

case "${1:-}" in
start) cmd_start ;;
destroy) cmd_destroy ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) url_for "${2:-$DB}" ;;
createdb) cmd_createdb "${2:-}" ;;
psql)
	shift
	running || die "the cluster is not running; run '$0 start' first"
	as_pg "$BIN/psql" -h "$SOCK" -p "$(running_port)" -U "$PGUSER_NAME" -d "$DB" "$@"
	;;
*)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
