#!/usr/bin/env bash
# bench-hung-valkey.sh: the session-transition latency of the real server
# binary with its Valkey healthy, hung (SIGSTOP) and continued (SIGCONT), like
# for like: the same server, the same fixtures, the same closed-loop session
# cycle (create to one mitra, accept, end: httpbench -only session) in each
# phase. docs/contract.md §13: a hung Valkey adds no latency to a session
# transition. It fails when the p50 of the cycle while Valkey hangs is more
# than BENCH_HUNG_BOUND (1.2) times the healthy one.
#
# Run it through scripts/with-services.sh (task bench:hung-valkey does), which
# provides TEST_DATABASE_URL (an admin DSN) and TEST_REDIS_SERVER. It starts
# its own redis-server on a free loopback port (it freezes that one, never a
# shared server) and its own database, and removes both on exit.
# Knobs: BENCH_DURATION (8s per phase), BENCH_CONCURRENCY (4), BENCH_HUNG_BOUND (1.2).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bench-hung-valkey: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ -n ${TEST_DATABASE_URL:-} ]] || die "TEST_DATABASE_URL is not set: run this through scripts/with-services.sh"
redis_server=${TEST_REDIS_SERVER:-$(command -v valkey-server || command -v redis-server || true)}
[[ -n $redis_server ]] || die "no redis-server or valkey-server (apt-get install -y redis-server)"
duration=${BENCH_DURATION:-8s}
concurrency=${BENCH_CONCURRENCY:-4}
bound=${BENCH_HUNG_BOUND:-1.2}
psql=psql
[[ -n ${TEST_PG_BINDIR:-} && -x $TEST_PG_BINDIR/psql ]] && psql=$TEST_PG_BINDIR/psql

dir=$(mktemp -d /tmp/bench-hung.XXXXXX)
db="benchhung_$(date +%s)_$RANDOM"
pid="" rpid=""
cleanup() {
	[[ -n $rpid ]] && { kill -CONT "$rpid" 2>/dev/null || true; kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; }
	[[ -n $pid ]] && { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
	"$psql" "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf -- "$dir"
}
trap cleanup EXIT

source scripts/lib/ports.sh # (the working directory is the repository root)

log "building the server and httpbench"
go build -o "$dir/server" ./app/cmd/server
go build -o "$dir/httpbench" ./app/cmd/httpbench

rport=$(free_port) || die "no free port"
"$redis_server" --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --dir "$dir" </dev/null >"$dir/redis.log" 2>&1 &
rpid=$!
wait_port "$rport" 100 || die "redis-server did not listen"
"$psql" "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
base=${TEST_DATABASE_URL%%\?*}
port=$(free_port) || die "no free port"
password="bench-hung-$RANDOM$RANDOM"
env APP_ENV=test JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
	ADMIN_PHONE=+620000000001 ADMIN_PASSWORD="$password" \
	STORE_BACKEND=postgres DATABASE_URL="${base%/*}/$db" CACHE_BACKEND=valkey VALKEY_URL="redis://127.0.0.1:$rport" \
	HTTP_ADDR="127.0.0.1:$port" "$dir/server" </dev/null >"$dir/server.log" 2>&1 &
pid=$!
wait_port "$port" 100 || { tail -n 30 "$dir/server.log" >&2; die "the server did not listen"; }

# phase NAME: one closed-loop session cycle run; prints its p50 in ms.
phase() {
	"$dir/httpbench" -url "http://127.0.0.1:$port" -admin-phone +620000000001 -admin-password "$password" \
		-mitras "$((concurrency * 2))" -concurrency "$concurrency" -duration "$duration" -warmup 1s -rate 0 \
		-only session -label "$1" -json "$dir/$1.json" </dev/null >"$dir/$1.out" 2>&1 ||
		{ cat "$dir/$1.out" >&2; die "$1: httpbench failed"; }
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][-1]; print("%.2f %.2f %.0f" % (r["p50_ms"], r["p99_ms"], r["rps"]))' "$dir/$1.json"
}

log "phase healthy"
read -r h50 h99 hrps < <(phase healthy)
kill -STOP "$rpid"
sleep 2 # the first calls time out and the service marks the cache unhealthy
log "phase hung (redis-server stopped with SIGSTOP)"
read -r s50 s99 srps < <(phase hung)
kill -CONT "$rpid"
sleep 3 # reconnect and reseed
log "phase continued"
read -r c50 c99 crps < <(phase continued)

ratio=$(python3 -c "print('%.2f' % ($s50 / $h50))")
printf '\nSession cycle (create + accept + end), %s concurrent customers, %s per phase\n\n' "$concurrency" "$duration"
printf '| phase | cycles/s | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |\n'
printf '| Valkey healthy | %s | %s | %s |\n' "$hrps" "$h50" "$h99"
printf '| Valkey hung (SIGSTOP) | %s | %s | %s |\n' "$srps" "$s50" "$s99"
printf '| Valkey continued | %s | %s | %s |\n' "$crps" "$c50" "$c99"
printf '\np50 hung / healthy: %s (bound %s)\n' "$ratio" "$bound"
if python3 -c "import sys; sys.exit(0 if $s50 <= $bound * $h50 else 1)"; then
	echo PASS
else
	echo "FAIL: the session cycle's p50 while Valkey hangs is more than $bound x the healthy one"
	exit 1
fi
