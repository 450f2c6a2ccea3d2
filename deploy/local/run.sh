#!/usr/bin/env bash
# deploy/local/run.sh: the body of `make run` and `make stop`.
#
#   run.sh start   start the local PostgreSQL (if needed), the controller in the
#                  foreground, and the demo lab; Ctrl-C stops them
#   run.sh stop    stop what `run.sh start` started, by pid
#
# `make run` installs deps and builds first; this script expects bin/switchyard.
# State kept in .local/ (git-ignored):
#   admin-token      the bootstrap admin token, generated on the first run
#   run.pid          pid of the running `run.sh start`
#   switchyard.pid   pid of the controller it started
#   run-started-pg   present when `run.sh start` started PostgreSQL itself
#   demo.pid         pid of the demo lab (bin/sylab), demo.txt its try-this text
#   tls/             the local CA (ca.pem, ca-key.pem) and the controller's
#                    certificate (server.pem, server-key.pem), made once with
#                    openssl; the controller serves HTTPS with them unless
#                    SWITCHYARD_TLS=0 (plain HTTP on loopback). docs/security.md
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
LOCAL="$REPO/.local"
PG="$REPO/deploy/local/postgres.sh"
RUN_PID="$LOCAL/run.pid"
CTL_PID="$LOCAL/switchyard.pid"
PG_MARK="$LOCAL/run-started-pg"
TOKEN_FILE="$LOCAL/admin-token"
TLS_DIR="$LOCAL/tls"

say() { echo "run.sh: $*" >&2; }
die() { say "$*"; exit 1; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------------------
# DEMO LAB HOOK. `make run` starts a small lab here once the controller is
# ready: bin/sylab (tests/lab/cmd/sylab) builds 3 simulated hosts (netns, each
# with its own OVS), starts their node agents against the controller, creates
# networks blue and red, a few containers and a service web (HTTP servers
# from bin/syprobe in web1 and web2), prints commands to try (also
# in .local/demo.txt) and runs until stopped. Skipped when SWITCHYARD_DEMO=0;
# without root or OVS, sylab says why and the controller runs alone.
DEMO_PID="$LOCAL/demo.pid"
DEMO_INFO="$LOCAL/demo.txt"

demo_lab_start() {
	if [ "${SWITCHYARD_DEMO:-1}" = 0 ]; then
		say "demo lab skipped (SWITCHYARD_DEMO=0)"
		return
	fi
	if [ ! -x "$REPO/bin/sylab" ] || [ ! -x "$REPO/bin/switchyard-agent" ] || [ ! -x "$REPO/bin/syprobe" ]; then
		say "demo lab: bin/sylab, bin/switchyard-agent or bin/syprobe is missing (see 'make build'); the controller runs alone"
		return
	fi
	say "demo lab: starting 3 hosts with their agents (SWITCHYARD_DEMO=0 skips this)"
	# SWITCHYARD_ADMIN_TOKEN is exported by cmd_start.
	"$REPO/bin/sylab" -controller "$(base_url)" -agent "$REPO/bin/switchyard-agent" -info "$DEMO_INFO" &
	echo $! >"$DEMO_PID"
}

# demo_lab_stop must be idempotent: it is called on every exit and by `stop`.
# sylab stops its agents and tears its lab down on SIGTERM; if it does not
# finish in 30s it is killed, and `sylab -clean` removes what it left.
demo_lab_stop() {
	[ -f "$DEMO_PID" ] || return 0
	local pid
	pid="$(cat "$DEMO_PID")"
	if alive "$DEMO_PID"; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then
			say "demo lab: still stopping after 30s; killing it (pid $pid)"
			kill -KILL "$pid" 2>/dev/null || true
			for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		fi
	fi
	# Removes the lab of a sylab that died without cleaning up (a no-op otherwise).
	[ ! -x "$REPO/bin/sylab" ] || "$REPO/bin/sylab" -clean || true
	rm -f "$DEMO_PID" "$DEMO_INFO"
}
# END OF DEMO LAB HOOK
# ---------------------------------------------------------------------------

# admin_token prints the token to use: SWITCHYARD_ADMIN_TOKEN if set, else the
# one stored in .local/admin-token, generated on first use.
admin_token() {
	if [ -n "${SWITCHYARD_ADMIN_TOKEN:-}" ]; then
		echo "$SWITCHYARD_ADMIN_TOKEN"
		return
	fi
	if [ ! -s "$TOKEN_FILE" ]; then
		(umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$TOKEN_FILE")
	fi
	cat "$TOKEN_FILE"
}

# base_url turns SWITCHYARD_LISTEN into a URL a local client can use.
base_url() {
	local l="${SWITCHYARD_LISTEN:-127.0.0.1:8080}"
	case "$l" in
	:*) l="127.0.0.1$l" ;;
	0.0.0.0:*) l="127.0.0.1:${l#0.0.0.0:}" ;;
	"[::]:"*) l="[::1]:${l#\[::\]:}" ;;
	esac
	echo "$(scheme)://$l"
}

tls_on() { [ "${SWITCHYARD_TLS:-1}" != 0 ]; }
scheme() { if tls_on; then echo https; else echo http; fi; }

# tls_sans lists the names the controller's certificate is valid for: this
# machine by loopback and hostname, and SWITCHYARD_LISTEN's address when it
# names one.
tls_sans() {
	local sans="DNS:localhost,IP:127.0.0.1,IP:::1" host ip
	host="$(hostname)"
	[ -z "$host" ] || [ "$host" = localhost ] || sans="$sans,DNS:$host"
	ip="${SWITCHYARD_LISTEN:-}"
	ip="${ip%:*}"; ip="${ip#[}"; ip="${ip%]}"
	case "$ip" in
	"" | 0.0.0.0 | :: | 127.0.0.1 | ::1 | localhost) ;;
	*[!0-9a-fA-F.:]*) sans="$sans,DNS:$ip" ;;
	*) sans="$sans,IP:$ip" ;;
	esac
	echo "$sans"
}

# local_tls makes the local CA once, and the controller's certificate
# whenever its names change; it prints nothing else.
local_tls() {
	command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl), or run with SWITCHYARD_TLS=0"
	mkdir -p "$TLS_DIR"
	chmod 700 "$TLS_DIR"
	if [ ! -s "$TLS_DIR/ca.pem" ] || [ ! -s "$TLS_DIR/ca-key.pem" ]; then
		say "creating a local CA in $TLS_DIR (once)"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
			-subj "/CN=Switchyard local CA ($(hostname))" -keyout "$TLS_DIR/ca-key.pem" -out "$TLS_DIR/ca.pem" \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		rm -f "$TLS_DIR/server.pem"
	fi
	local sans
	sans="$(tls_sans)"
	if [ ! -s "$TLS_DIR/server.pem" ] || [ "$(cat "$TLS_DIR/server.san" 2>/dev/null)" != "$sans" ]; then
		say "issuing the controller's certificate for $sans"
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=switchyard controller" \
			-keyout "$TLS_DIR/server-key.pem" -out "$TLS_DIR/server.csr" 2>/dev/null
		openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca-key.pem" -CAcreateserial \
			-days 825 -out "$TLS_DIR/server.pem" \
			-extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' "$sans") 2>/dev/null
		rm -f "$TLS_DIR/server.csr"
		echo "$sans" >"$TLS_DIR/server.san"
	fi
	chmod 600 "$TLS_DIR"/*-key.pem
}

cleanup() {
	trap - INT TERM EXIT
	demo_lab_stop
	if alive "$CTL_PID"; then
		local pid
		pid="$(cat "$CTL_PID")"
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$CTL_PID" "$RUN_PID"
}

cmd_start() {
	mkdir -p "$LOCAL"
	! alive "$RUN_PID" || die "already running (pid $(cat "$RUN_PID")); use 'make stop' first"
	[ -x "$REPO/bin/switchyard" ] || die "bin/switchyard is missing: the controller did not build (see 'make build')"

	if [ -z "${SWITCHYARD_DATABASE_URL:-}" ]; then
		if ! "$PG" status >/dev/null 2>&1; then
			"$PG" start
			touch "$PG_MARK"
		else
			"$PG" start
		fi
		SWITCHYARD_DATABASE_URL="$("$PG" url)"
	fi
	SWITCHYARD_ADMIN_TOKEN="$(admin_token)"
	export SWITCHYARD_DATABASE_URL SWITCHYARD_ADMIN_TOKEN
	local curl_ca=() client_env=""
	if tls_on; then
		local_tls
		export SWITCHYARD_TLS_CERT="$TLS_DIR/server.pem" SWITCHYARD_TLS_KEY="$TLS_DIR/server-key.pem"
		# For the clients this script starts (the demo lab) and prints.
		export SWITCHYARD_CA_FILE="$TLS_DIR/ca.pem"
		curl_ca=(--cacert "$SWITCHYARD_CA_FILE")
		client_env=" SWITCHYARD_CA_FILE=$SWITCHYARD_CA_FILE"
	fi

	echo $$ >"$RUN_PID"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 0' TERM   # a requested stop (make stop) is a clean exit

	"$REPO/bin/switchyard" &
	echo $! >"$CTL_PID"

	local url ok=0
	url="$(base_url)"
	for _ in $(seq 150); do
		alive "$CTL_PID" || break
		if curl -fsS "${curl_ca[@]}" -o /dev/null "$url/healthz" 2>/dev/null; then ok=1; break; fi
		sleep 0.2
	done
	if [ "$ok" != 1 ]; then
		alive "$CTL_PID" && die "the controller did not answer $url/healthz within 30s" \
			|| die "the controller exited during start (see its log above)"
	fi

	cat >&2 <<-EOF

		  Switchyard controller is up
		    console      $url/#token=$SWITCHYARD_ADMIN_TOKEN
		    API          $url/api/v1
		    health       $url/healthz
		    admin token  $SWITCHYARD_ADMIN_TOKEN
		    database     $SWITCHYARD_DATABASE_URL
		    CA           ${SWITCHYARD_CA_FILE:-none: plain HTTP (SWITCHYARD_TLS=0)}
		  try:  curl ${curl_ca[*]:+${curl_ca[*]} }-H "Authorization: Bearer $SWITCHYARD_ADMIN_TOKEN" $url/api/v1/networks
		  syctl: export SWITCHYARD_URL=$url SWITCHYARD_TOKEN=$SWITCHYARD_ADMIN_TOKEN$client_env PATH="$REPO/bin:\$PATH"   # then: syctl get hosts
		  stop: Ctrl-C here, or 'make stop' from another shell

	EOF
	demo_lab_start

	local rc=0
	wait "$(cat "$CTL_PID")" || rc=$?
	say "controller exited (status $rc)"
	exit "$rc"
}

cmd_stop() {
	local stopped=0
	if alive "$RUN_PID"; then
		local pid
		pid="$(cat "$RUN_PID")"
		kill -TERM "$pid"
		for _ in $(seq 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		stopped=1
	fi
	# Whatever the runner left behind (it was killed hard, say).
	if alive "$CTL_PID"; then stopped=1; fi
	cleanup
	if [ -f "$PG_MARK" ]; then
		"$PG" stop
		rm -f "$PG_MARK"
	fi
	[ "$stopped" = 1 ] && say "stopped" || say "nothing was running"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
