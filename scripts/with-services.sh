#!/usr/bin/env bash
# with-services.sh CMD [ARG...]
#
# Runs CMD with the services the integration and e2e tests need, and exits with
# CMD's exit code.
#
# Postgres: when DATABASE_URL is set it is used as is; otherwise a private
# PostgreSQL is initialised in a temporary directory (trust auth, user postgres,
# no fsync, its unix socket inside the temporary directory) and started on a
# free loopback port. Either way CMD sees TEST_DATABASE_URL, an admin DSN on
# which the tests create their own databases.
#
# Valkey: when VALKEY_URL is set it is used as is; otherwise a private
# valkey-server (or redis-server) is started on a free loopback port with no
# persistence. CMD sees TEST_VALKEY_URL.
#
# CMD also sees REQUIRE_INTEGRATION=1 (integration tests fail instead of
# skipping when a service is missing) and, for fault-injection tests that start
# and stop servers of their own, TEST_PG_BINDIR, TEST_REDIS_SERVER and
# TEST_REDIS_CLI when those binaries exist.
#
# Everything started here is stopped, and the temporary directory removed, when
# the script exits, however it exits. The shared servers on 5432 and 6379 are
# never touched. As root, initdb and postgres run as the postgres OS user (or
# nobody), because they refuse to run as root.
set -euo pipefail

readonly APT_HINT="apt-get install -y postgresql redis-server"
readonly START_ATTEMPTS=5

log() { printf 'with-services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# With stdin closed (as CI may run us), the next file opened would become fd 0
# and confuse the servers started below (redis-server crashes): use /dev/null.
if ! { : 9<&0; } 2>/dev/null; then
	exec </dev/null
fi

if [[ $# -eq 0 ]]; then
	printf 'usage: %s CMD [ARG...]\n' "${0##*/}" >&2
	exit 2
fi

# ---------------------------------------------------------------- binaries --

# find_pg_bindir prints the directory holding initdb, pg_ctl and postgres:
# the newest /usr/lib/postgresql/*/bin, else the directory of initdb on PATH.
find_pg_bindir() {
	local dir candidate
	while IFS= read -r candidate; do
		dir=${candidate%/initdb}
		if [[ -x $dir/pg_ctl && -x $dir/postgres ]]; then
			printf '%s\n' "$dir"
			return 0
		fi
	done < <(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -t/ -k5,5 -V -r)
	if candidate=$(command -v initdb 2>/dev/null); then
		candidate=$(readlink -f "$candidate")
		dir=${candidate%/initdb}
		if [[ -x $dir/pg_ctl && -x $dir/postgres ]]; then
			printf '%s\n' "$dir"
			return 0
		fi
	fi
	return 1
}

# find_first prints the path of the first of its arguments found on PATH.
find_first() {
	local name
	for name in "$@"; do
		if command -v "$name" >/dev/null 2>&1; then
			command -v "$name"
			return 0
		fi
	done
	return 1
}

PG_BINDIR=$(find_pg_bindir || true)
REDIS_SERVER=$(find_first valkey-server redis-server || true)
REDIS_CLI=$(find_first valkey-cli redis-cli || true)

missing=()
if [[ -z ${DATABASE_URL:-} && -z $PG_BINDIR ]]; then
	missing+=("PostgreSQL server binaries (initdb, pg_ctl, postgres)")
fi
if [[ -z ${VALKEY_URL:-} && -z $REDIS_SERVER ]]; then
	missing+=("valkey-server or redis-server")
fi
if [[ ${#missing[@]} -gt 0 ]]; then
	for m in "${missing[@]}"; do
		log "missing: $m"
	done
	log "install them with:"
	log "    $APT_HINT"
	log "or point DATABASE_URL / VALKEY_URL at servers that are already running."
	exit 1
fi

# ------------------------------------------------------------------ helpers --

source "$(dirname "${BASH_SOURCE[0]}")/lib/ports.sh"

# ------------------------------------------------------------------ cleanup --

WORKDIR=""
PG_DATA=""
PG_STARTED=0
REDIS_PIDFILE=""
CLEANED=0

# as_pg_user runs a command as the user that owns the Postgres data directory:
# the current user, or PG_OS_USER when running as root.
PG_OS_USER=""
as_pg_user() {
	if [[ -z $PG_OS_USER ]]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u "$PG_OS_USER" -- "$@"
	else
		su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")"
	fi
}

stop_redis() {
	[[ -n $REDIS_PIDFILE && -s $REDIS_PIDFILE ]] || return 0
	local pid i
	pid=$(<"$REDIS_PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

stop_postgres() {
	[[ $PG_STARTED -eq 1 && -n $PG_DATA ]] || return 0
	if ! (cd "$WORKDIR" && as_pg_user "$PG_BINDIR/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 30) >/dev/null 2>&1; then
		# pg_ctl could not do it: kill the postmaster by the PID it recorded.
		local pid
		if [[ -s $PG_DATA/postmaster.pid ]]; then
			pid=$(head -n1 "$PG_DATA/postmaster.pid")
			[[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	PG_STARTED=0
}

cleanup() {
	[[ $CLEANED -eq 0 ]] || return 0
	CLEANED=1
	stop_redis
	stop_postgres
	if [[ -n $WORKDIR && -d $WORKDIR ]]; then
		rm -rf -- "$WORKDIR"
	fi
}

on_exit() {
	local rc=$?
	cleanup
	exit "$rc"
}

on_signal() {
	local code=$1
	trap - EXIT INT TERM HUP
	cleanup
	exit "$code"
}

trap on_exit EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

NEED_WORKDIR=0
[[ -z ${DATABASE_URL:-} || -z ${VALKEY_URL:-} ]] && NEED_WORKDIR=1
if [[ $NEED_WORKDIR -eq 1 ]]; then
	# A short path: the Postgres socket path must stay under ~107 bytes.
	WORKDIR=$(mktemp -d /tmp/with-services.XXXXXX)
fi

# ----------------------------------------------------------------- postgres --

start_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		if id -u postgres >/dev/null 2>&1; then
			PG_OS_USER=postgres
		else
			PG_OS_USER=nobody
		fi
		if ! command -v runuser >/dev/null 2>&1 && ! command -v su >/dev/null 2>&1; then
			die "running as root, but neither runuser nor su is available to run Postgres as $PG_OS_USER"
		fi
		# The temporary directory is root's: let the Postgres user through it.
		chmod 0755 "$WORKDIR"
	fi

	local pgdir=$WORKDIR/pg
	mkdir -m 0700 "$pgdir"
	mkdir -m 0700 "$pgdir/socket"
	if [[ -n $PG_OS_USER ]]; then
		chown -R "$PG_OS_USER:$(id -gn "$PG_OS_USER")" "$pgdir"
	fi
	PG_DATA=$pgdir/data

	# cd: initdb and pg_ctl complain when they cannot read the current directory.
	if ! (cd "$pgdir" && as_pg_user "$PG_BINDIR/initdb" -D "$PG_DATA" -U postgres \
		--auth=trust --no-sync --encoding=UTF8 --locale=C) </dev/null >"$WORKDIR/initdb.log" 2>&1; then
		cat "$WORKDIR/initdb.log" >&2
		die "initdb failed"
	fi

	local port attempt
	for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
		port=$(free_port) || die "no free loopback port for Postgres"
		if (cd "$pgdir" && as_pg_user "$PG_BINDIR/pg_ctl" start -D "$PG_DATA" -w -t 60 \
			-l "$pgdir/postgres.log" \
			-o "-p $port -k $pgdir/socket -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300") </dev/null >/dev/null 2>&1; then
			PG_STARTED=1
			PG_PORT=$port
			return 0
		fi
		# The postmaster may still be there if pg_ctl only timed out.
		PG_STARTED=1
		stop_postgres
		if ! grep -qiE 'could not (bind|create listen)|address already in use' "$pgdir/postgres.log" 2>/dev/null; then
			cat "$pgdir/postgres.log" >&2 2>/dev/null || true
			die "Postgres did not start"
		fi
		log "port $port was taken, trying another"
		: >"$pgdir/postgres.log"
	done
	cat "$pgdir/postgres.log" >&2 2>/dev/null || true
	die "Postgres did not start after $START_ATTEMPTS attempts"
}

# ------------------------------------------------------------------ valkey --

redis_ping() { # port
	if [[ -n $REDIS_CLI ]]; then
		[[ $("$REDIS_CLI" -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
	else
		port_in_use "$1"
	fi
}

start_redis() {
	local dir=$WORKDIR/redis port attempt pid i
	mkdir -m 0700 "$dir"
	REDIS_PIDFILE=$dir/server.pid
	for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
		port=$(free_port) || die "no free loopback port for $REDIS_SERVER"
		rm -f "$REDIS_PIDFILE"
		"$REDIS_SERVER" --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
			--dir "$dir" --daemonize yes --pidfile "$REDIS_PIDFILE" \
			--logfile "$dir/server.log" </dev/null >/dev/null 2>&1 || true
		for ((i = 0; i < 100; i++)); do
			if [[ -s $REDIS_PIDFILE ]]; then
				pid=$(<"$REDIS_PIDFILE")
				if ! kill -0 "$pid" 2>/dev/null; then
					break
				fi
				if redis_ping "$port"; then
					# Make sure the server answering is ours, not a newcomer on that port.
					if [[ -z $REDIS_CLI ]] || "$REDIS_CLI" -h 127.0.0.1 -p "$port" info server 2>/dev/null |
						tr -d '\r' | grep -qx "process_id:$pid"; then
						REDIS_PORT=$port
						return 0
					fi
				fi
			fi
			sleep 0.1
		done
		stop_redis
		if ! grep -qiE 'address already in use|could not create server' "$dir/server.log" 2>/dev/null; then
			cat "$dir/server.log" >&2 2>/dev/null || true
			die "$REDIS_SERVER did not start"
		fi
		log "port $port was taken, trying another"
	done
	cat "$dir/server.log" >&2 2>/dev/null || true
	die "$REDIS_SERVER did not start after $START_ATTEMPTS attempts"
}

# --------------------------------------------------------------------- main --

if [[ -n ${DATABASE_URL:-} ]]; then
	export TEST_DATABASE_URL=$DATABASE_URL
else
	start_postgres
	export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
	log "private PostgreSQL on 127.0.0.1:$PG_PORT ($PG_BINDIR)"
fi

if [[ -n ${VALKEY_URL:-} ]]; then
	export TEST_VALKEY_URL=$VALKEY_URL
else
	start_redis
	export TEST_VALKEY_URL="redis://127.0.0.1:$REDIS_PORT"
	log "private ${REDIS_SERVER##*/} on 127.0.0.1:$REDIS_PORT"
fi

export REQUIRE_INTEGRATION=1
[[ -n $PG_BINDIR ]] && export TEST_PG_BINDIR=$PG_BINDIR
[[ -n $REDIS_SERVER ]] && export TEST_REDIS_SERVER=$REDIS_SERVER
[[ -n $REDIS_CLI ]] && export TEST_REDIS_CLI=$REDIS_CLI

# Run CMD. From a terminal it runs in the foreground, so that it can read the
# terminal and a Ctrl-C reaches it directly; the traps run once it is done.
# Otherwise (CI, task, scripts) it runs as a background job in a process group
# of its own, so that a signal sent to this script alone is forwarded at once to
# CMD and everything CMD started, and the services are still cleaned up.
if [[ -t 0 ]]; then
	set +e
	"$@"
	rc=$?
	set -e
	exit "$rc"
fi

CHILD=""
KILLER=""
SIGNALLED=0
INTERRUPTED=0
forward() { # signal exit-code
	SIGNALLED=$2
	INTERRUPTED=1
	[[ -n $CHILD ]] || return 0
	kill -"$1" -- "-$CHILD" 2>/dev/null || true
	if [[ -z $KILLER ]]; then
		# Whatever is still running after a grace period is killed.
		(sleep 30 && kill -KILL -- "-$CHILD") >/dev/null 2>&1 &
		KILLER=$!
	fi
}
trap 'forward INT 130' INT
trap 'forward TERM 143' TERM
trap 'forward HUP 129' HUP

set -m
"$@" <&0 & # keep stdin (bash would give a background job /dev/null)
CHILD=$!
set +m

while true; do
	INTERRUPTED=0
	set +e
	wait "$CHILD"
	rc=$?
	set -e
	# wait returns early when a trapped signal arrives: wait again, which
	# blocks until CMD has exited or returns the status bash recorded for it.
	((INTERRUPTED)) || break
done
[[ -n $KILLER ]] && kill "$KILLER" 2>/dev/null
if ((SIGNALLED != 0 && rc == 0)); then
	rc=$SIGNALLED
fi
exit "$rc"
