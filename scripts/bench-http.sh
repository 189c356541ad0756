#!/usr/bin/env bash
# bench-http.sh: HTTP throughput of the real server binary, measured by a
# separate load process (app/cmd/httpbench, which drives wrk when it is
# installed and its own Go generator otherwise, and says which).
#
# Run it through scripts/with-services.sh (task bench:http does), which
# provides TEST_DATABASE_URL (an admin DSN) and TEST_VALKEY_URL. It builds the
# server and httpbench into a temporary directory, then runs the server in
# each configuration in turn on a free loopback port, each time on a fresh
# Postgres database (and its own VALKEY_KEY_PREFIX):
#
#   postgres+valkey  STORE_BACKEND=postgres CACHE_BACKEND=valkey  (production)
#   postgres+none    STORE_BACKEND=postgres CACHE_BACKEND=none    (the Postgres fallback)
#   memory+memory    STORE_BACKEND=memory   CACHE_BACKEND=memory  (BENCH_CONFIGS=all only)
#
# Next to each server it starts the floor, a plain net/http server answering
# 204 (httpbench -serve-floor), and runs httpbench against both with the same
# settings: the floor first, then GET /healthz (the service's own floor, at
# the default LOG_LEVEL, so the access log is written), then every target,
# each with the server's CPU time per request read from /proc, and with
# Valkey the commands it processed (INFO commandstats). Then it stops the
# server with SIGTERM and checks that it exits 0. At the end it prints the
# results as Markdown: every target's req/s per configuration, its ratios to
# the floor and to GET /healthz of the same run, the server CPU per request,
# the latencies and the Valkey commands per request.
#
# Knobs: BENCH_MITRAS (1000), BENCH_CONCURRENCY (64), BENCH_DURATION (10s per
# target), BENCH_WARMUP (2s), BENCH_RATE (2000: the fixed rate of the
# status and availability latency targets), BENCH_CONFIGS (default: the two
# Postgres ones; all: also memory+memory), BENCH_LOG_LEVEL (the server's
# LOG_LEVEL; default unset, i.e. info), BENCH_WRK (auto, off or a path),
# BENCH_JSON_DIR (keep the JSON reports there).
# Exit 0 when every run passed, 1 when one failed, 2 on a bad knob or a
# missing tool. Everything it starts or creates
# (servers, databases, Valkey keys, the temporary directory) is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bench-http: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ -n ${TEST_DATABASE_URL:-} && -n ${TEST_VALKEY_URL:-} ]] ||
	die "TEST_DATABASE_URL and TEST_VALKEY_URL are not set: run this through scripts/with-services.sh"

mitras=${BENCH_MITRAS:-1000}
concurrency=${BENCH_CONCURRENCY:-64}
rate=${BENCH_RATE:-2000}
configs_knob=${BENCH_CONFIGS:-postgres}
log_level=${BENCH_LOG_LEVEL:-}
wrk=${BENCH_WRK:-auto}
duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-2s}
[[ $mitras =~ ^[1-9][0-9]*$ ]] || die "BENCH_MITRAS must be a positive integer, not '$mitras'"
[[ $concurrency =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONCURRENCY must be a positive integer, not '$concurrency'"
duration_re='^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'
[[ $duration =~ $duration_re ]] || die "BENCH_DURATION must be a Go duration such as 10s, not '$duration'"
[[ $warmup =~ $duration_re || $warmup == 0 ]] || die "BENCH_WARMUP must be a Go duration such as 2s, not '$warmup'"
[[ $rate =~ ^[0-9]+$ ]] || die "BENCH_RATE must be a whole number of requests/s (0 skips the fixed-rate targets), not '$rate'"
[[ $configs_knob == postgres || $configs_knob == all ]] || die "BENCH_CONFIGS must be postgres or all, not '$configs_knob'"
[[ -z $log_level || $log_level =~ ^(debug|info|warn|error)$ ]] || die "BENCH_LOG_LEVEL must be debug, info, warn or error, not '$log_level'"
if [[ -n ${BENCH_JSON_DIR:-} && ! -d $BENCH_JSON_DIR ]]; then
	die "BENCH_JSON_DIR=$BENCH_JSON_DIR is not a directory"
fi

psql=psql
[[ -n ${TEST_PG_BINDIR:-} && -x $TEST_PG_BINDIR/psql ]] && psql=$TEST_PG_BINDIR/psql
command -v "$psql" >/dev/null || die "psql not found (apt-get install -y postgresql-client)"
redis_cli=${TEST_REDIS_CLI:-}

# The server's configuration variables: none is inherited, each run sets its own.
server_vars=(HTTP_ADDR APP_ENV STORE_BACKEND DATABASE_URL MIGRATE_ON_START CACHE_BACKEND VALKEY_URL
	VALKEY_KEY_PREFIX VALKEY_TIMEOUT JWT_SECRET ACCESS_TOKEN_TTL REFRESH_TOKEN_TTL ADMIN_PHONE ADMIN_PASSWORD
	DEFAULT_MITRA_CAPACITY HEARTBEAT_STALE_SECONDS MITRA_AUTO_OFFLINE_SWEEP_SECONDS
	HEARTBEAT_MIRROR_INTERVAL_SECONDS VALKEY_ONLINE_MIRROR_SWEEP_SECONDS AVAILABILITY_SNAPSHOT_TTL_SECONDS
	PAIRING_TIMEOUT_SECONDS PAYMENT_TIMEOUT_SECONDS SESSION_WARNING_LEAD_SECONDS SHUTDOWN_TIMEOUT LOG_LEVEL PPROF_ADDR)
unset_args=()
for v in "${server_vars[@]}"; do unset_args+=(-u "$v"); done

readonly admin_phone=+620000000001
admin_password="bench-http-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
run_tag="benchhttp_$(date +%s)_$RANDOM"

dir=$(mktemp -d /tmp/bench-http.XXXXXX)
pid=""      # the running server
floor_pid="" # the running floor server
db=""       # its database
prefix=""   # its Valkey key prefix

drop_db() {
	[[ -n $db ]] || return 0
	"$psql" "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 ||
		log "warning: could not drop database $db"
	db=""
}

delete_prefix() {
	[[ -n $prefix ]] || return 0
	if [[ -n $redis_cli ]]; then
		"$redis_cli" -u "$TEST_VALKEY_URL" --scan --pattern "$prefix*" 2>/dev/null |
			xargs -r -n 500 "$redis_cli" -u "$TEST_VALKEY_URL" DEL >/dev/null 2>&1 ||
			log "warning: could not delete the keys under $prefix"
	fi
	prefix=""
}

stop_server() {
	if [[ -n $floor_pid ]]; then
		kill -TERM "$floor_pid" 2>/dev/null || true
		wait "$floor_pid" 2>/dev/null || true
		floor_pid=""
	fi
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
}

cleanup() {
	stop_server
	drop_db
	delete_prefix
	rm -rf -- "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

source scripts/lib/ports.sh # (the working directory is the repository root)

log "building the server and httpbench"
go build -o "$dir/server" ./app/cmd/server
go build -o "$dir/httpbench" ./app/cmd/httpbench

# bench NAME STORE CACHE: one server in that configuration, one httpbench run.
# It is called as `bench … || status=1`, where bash ignores set -e inside it:
# every step checks its own failure.
bench() {
	local name=$1 store=$2 cache=$3 port floor_port i rc=0
	local vars=(APP_ENV=test JWT_SECRET="$secret"
		ADMIN_PHONE="$admin_phone" ADMIN_PASSWORD="$admin_password"
		STORE_BACKEND="$store" CACHE_BACKEND="$cache")
	if [[ $store == postgres ]]; then
		db="${run_tag}_${name//[^a-z]/_}"
		if ! "$psql" "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null; then
			log "$name: could not create database $db"
			db=""
			return 1
		fi
		local base=${TEST_DATABASE_URL%%\?*} query=""
		[[ $TEST_DATABASE_URL == *\?* ]] && query="?${TEST_DATABASE_URL#*\?}"
		vars+=(DATABASE_URL="${base%/*}/$db$query")
	fi
	[[ -n $log_level ]] && vars+=(LOG_LEVEL="$log_level")
	local valkey_args=()
	if [[ $cache == valkey ]]; then
		prefix="${run_tag}_${name//[^a-z]/_}:"
		vars+=(VALKEY_URL="$TEST_VALKEY_URL" VALKEY_KEY_PREFIX="$prefix")
		valkey_args=(-valkey-url "$TEST_VALKEY_URL")
	fi
	port=$(free_port) || { log "$name: no free loopback port"; return 1; }
	vars+=(HTTP_ADDR="127.0.0.1:$port")

	log "$name: starting the server on 127.0.0.1:$port (STORE_BACKEND=$store CACHE_BACKEND=$cache)"
	env "${unset_args[@]}" "${vars[@]}" "$dir/server" </dev/null >"$dir/$name.log" 2>&1 &
	pid=$!
	# Wait until it listens, or fail at once if it died (a taken port, a bad DSN).
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" || true
			pid=""
			log "$name: the server exited before it listened; its log:"
			tail -n 30 "$dir/$name.log" >&2
			return 1
		fi
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done

	floor_port=$(free_port) || { log "$name: no free loopback port for the floor"; return 1; }
	"$dir/httpbench" -serve-floor "127.0.0.1:$floor_port" </dev/null >"$dir/$name.floor.log" 2>&1 &
	floor_pid=$!

	"$dir/httpbench" -url "http://127.0.0.1:$port" -admin-phone "$admin_phone" -admin-password "$admin_password" \
		-floor-url "http://127.0.0.1:$floor_port" -floor-pid "$floor_pid" -server-pid "$pid" \
		-mitras "$mitras" -concurrency "$concurrency" -duration "$duration" -warmup "$warmup" \
		-rate "$rate" -wrk "$wrk" "${valkey_args[@]}" \
		-label "$name" -json "$dir/$name.json" </dev/null || rc=$?

	kill -TERM "$floor_pid" 2>/dev/null || true
	if ! wait "$floor_pid"; then
		log "$name: the floor server did not exit 0 on SIGTERM"
		rc=1
	fi
	floor_pid=""

	kill -TERM "$pid" 2>/dev/null || true
	if ! wait "$pid"; then
		log "$name: the server did not exit 0 on SIGTERM"
		rc=1
	fi
	pid=""
	if ((rc != 0)); then
		log "$name: FAILED (exit $rc); the server's log:"
		tail -n 30 "$dir/$name.log" >&2
	fi
	drop_db
	delete_prefix
	return "$rc"
}

configs=("postgres+valkey postgres valkey" "postgres+none postgres none")
[[ $configs_knob == all ]] && configs+=("memory+memory memory memory")
status=0
reports=()
for c in "${configs[@]}"; do
	read -r name store cache <<<"$c"
	bench "$name" "$store" "$cache" || status=1
	if [[ -s $dir/$name.json ]]; then
		reports+=("$dir/$name.json")
	fi
done

if ((${#reports[@]} > 0)); then
	echo
	echo "HTTP throughput: $mitras mitras, $concurrency connections, $duration per target after $warmup of warm-up, fixed rate $rate/s, LOG_LEVEL ${log_level:-info (default)}, $(nproc 2>/dev/null || echo '?') cores"
	echo
	"$dir/httpbench" -compare "$(IFS=,; echo "${reports[*]}")" || status=1
	if [[ -n ${BENCH_JSON_DIR:-} ]]; then
		cp -- "${reports[@]}" "$BENCH_JSON_DIR"/
		log "JSON reports copied to $BENCH_JSON_DIR"
	fi
fi
if ((status != 0)); then
	log "FAIL: at least one configuration failed (see above)"
fi
exit "$status"
