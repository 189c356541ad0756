#!/usr/bin/env bash
# bench-http-ab.sh REF_A REF_B: a paired A/B of two builds of the server in
# one run, for changes whose effect is of the size of this machine's noise.
#
# Run it through scripts/with-services.sh (it needs TEST_DATABASE_URL). It
# builds the server of each git ref (a commit, a branch, or "." for the work
# tree) and httpbench of the work tree, starts the two servers side by side
# in the production configuration (STORE_BACKEND=postgres CACHE_BACKEND=valkey),
# each on a fresh Postgres database and on a redis-server of its own (so that
# INFO commandstats counts one server's commands), plus one plain net/http
# floor, then measures them alternately, A B B A A B B A …, with
# `httpbench -only "$AB_ONLY"` (wrk when installed), AB_PAIRS pairs, and
# prints per run and per side: req/s and its ratio to the floor and to
# /healthz, the server CPU per request, the Valkey commands per request
# (INFO commandstats) and Valkey's CPU per request (INFO cpu), with the load
# averages before and after each run.
#
# Knobs: AB_PAIRS (4), AB_ONLY (plain|healthz|heartbeat), AB_MITRAS (200),
# AB_CONCURRENCY (64), AB_DURATION (6s), AB_WARMUP (1s), AB_JSON_DIR (keep
# the JSON reports there), AB_PPROF_A / AB_PPROF_B (PPROF_ADDR of a server),
# AB_PROFILE_DIR (with AB_PPROF_*: a CPU profile of AB_PROFILE_SECONDS, 5,
# of each run's target named by AB_PROFILE_AT, heartbeat, and the binaries,
# kept there), AB_ENV_A / AB_ENV_B (extra VAR=value words in a server's
# environment, e.g. AB_ENV_B='GOGC=400' to compare a runtime setting on one build).
# Everything it starts or creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bench-http-ab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

(($# == 2)) || die "usage: bench-http-ab.sh REF_A REF_B (a git ref, or . for the work tree)"
[[ -n ${TEST_DATABASE_URL:-} ]] || die "TEST_DATABASE_URL is not set: run this through scripts/with-services.sh"
redis_server=${TEST_REDIS_SERVER:-$(command -v valkey-server || command -v redis-server || true)}
[[ -n $redis_server ]] || die "no valkey-server or redis-server"
psql=psql
[[ -n ${TEST_PG_BINDIR:-} && -x $TEST_PG_BINDIR/psql ]] && psql=$TEST_PG_BINDIR/psql

pairs=${AB_PAIRS:-4}
only=${AB_ONLY:-plain|healthz|heartbeat}
mitras=${AB_MITRAS:-200}
concurrency=${AB_CONCURRENCY:-64}
duration=${AB_DURATION:-6s}
warmup=${AB_WARMUP:-1s}

readonly admin_phone=+620000000001
admin_password="bench-ab-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
run_tag="benchab_$(date +%s)_$RANDOM"
dir=$(mktemp -d /tmp/bench-http-ab.XXXXXX)
pids=()
dbs=()

cleanup() {
	local p d
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for d in "${dbs[@]}"; do
		"$psql" "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
	done
	git worktree remove --force "$dir/src" >/dev/null 2>&1 || true
	rm -rf -- "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

source scripts/lib/ports.sh # (the working directory is the repository root)

# build REF OUT: the server of REF into OUT.
build() {
	if [[ $1 == . ]]; then
		go build -o "$2" ./app/cmd/server
		return
	fi
	rm -rf "$dir/src"
	git worktree add --detach "$dir/src" "$1" >/dev/null 2>&1 || die "cannot check out $1"
	(cd "$dir/src" && go build -o "$2" ./app/cmd/server)
	git worktree remove --force "$dir/src" >/dev/null
}

log "building A ($1), B ($2) and httpbench"
build "$1" "$dir/server-A"
build "$2" "$dir/server-B"
go build -o "$dir/httpbench" ./app/cmd/httpbench

declare -A url valkey spid
for side in A B; do
	vport=$(free_port) || die "no free port"
	"$redis_server" --port "$vport" --bind 127.0.0.1 --save '' --appendonly no </dev/null >"$dir/redis-$side.log" 2>&1 &
	pids+=($!)
	wait_port "$vport" || die "redis-server $side did not start"
	db="${run_tag}_$side"
	db=${db,,}
	"$psql" "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
	dbs+=("$db")
	base=${TEST_DATABASE_URL%%\?*} query=""
	[[ $TEST_DATABASE_URL == *\?* ]] && query="?${TEST_DATABASE_URL#*\?}"
	port=$(free_port) || die "no free port"
	pprof_var="AB_PPROF_$side"
	env_var="AB_ENV_$side"
	read -r -a extra_env <<<"${!env_var:-}"
	env -i PATH="$PATH" HOME="$HOME" APP_ENV=test JWT_SECRET="$secret" \
		ADMIN_PHONE="$admin_phone" ADMIN_PASSWORD="$admin_password" \
		STORE_BACKEND=postgres CACHE_BACKEND=valkey DATABASE_URL="${base%/*}/$db$query" \
		VALKEY_URL="redis://127.0.0.1:$vport" HTTP_ADDR="127.0.0.1:$port" PPROF_ADDR="${!pprof_var:-}" \
		"${extra_env[@]}" "$dir/server-$side" </dev/null >"$dir/server-$side.log" 2>&1 &
	spid[$side]=$!
	pids+=($!)
	wait_port "$port" || die "server $side did not listen; $(tail -n 20 "$dir/server-$side.log")"
	url[$side]="http://127.0.0.1:$port"
	valkey[$side]="redis://127.0.0.1:$vport"
	log "$side: server pid ${spid[$side]} on $port, redis-server on $vport"
done
fport=$(free_port) || die "no free port"
"$dir/httpbench" -serve-floor "127.0.0.1:$fport" </dev/null >"$dir/floor.log" 2>&1 &
floor_pid=$!
pids+=($floor_pid)
wait_port "$fport" || die "the floor did not listen"

order=()
for ((i = 0; i < pairs; i++)); do
	if ((i % 2 == 0)); then order+=(A B); else order+=(B A); fi
done
n=0
printf 'run\tside\ttarget\treq/s\tvs floor\tvs /healthz\tserver CPU us/req\tValkey commands/req\tValkey CPU us/req\tcalls\tload average before -> after\n'
for side in "${order[@]}"; do
	n=$((n + 1))
	load0=$(cut -d' ' -f1-3 /proc/loadavg)
	pprof_var="AB_PPROF_$side"
	if [[ -n ${AB_PROFILE_DIR:-} && -n ${!pprof_var:-} ]]; then
		# A CPU profile of the server during its heartbeat target.
		(
			for ((i = 0; i < 1200; i++)); do
				grep -q "${AB_PROFILE_AT:-heartbeat} for" "$dir/run$n-$side.txt" 2>/dev/null && break
				sleep 0.1
			done
			sleep 2
			curl -s -o "$AB_PROFILE_DIR/run$n-$side.cpu" "http://${!pprof_var}/debug/pprof/profile?seconds=${AB_PROFILE_SECONDS:-5}"
		) &
	fi
	"$dir/httpbench" -url "${url[$side]}" -admin-phone "$admin_phone" -admin-password "$admin_password" \
		-floor-url "http://127.0.0.1:$fport" -floor-pid "$floor_pid" -server-pid "${spid[$side]}" \
		-valkey-url "${valkey[$side]}" -mitras "$mitras" -concurrency "$concurrency" \
		-duration "$duration" -warmup "$warmup" -rate 0 -sessions=false -only "$only" \
		-label "$side" -json "$dir/run$n-$side.json" </dev/null >"$dir/run$n-$side.txt" 2>&1 ||
		{ cat "$dir/run$n-$side.txt" >&2; die "run $n ($side) failed"; }
	load1=$(cut -d' ' -f1-3 /proc/loadavg)
	jq -r --arg n "$n" --arg side "$side" --arg l0 "$load0" --arg l1 "$load1" '
		.results[] | [$n, $side, .target, (.rps|floor), (.ratio_to_floor*100|round/100),
		  (.ratio_to_healthz*100|round/100), (.server_cpu_us_per_request*10|round/10),
		  ((.valkey.commands_per_request // 0)*100|round/100), ((.valkey.cpu_us_per_request // 0)*10|round/10),
		  ((.valkey.calls // {}) | to_entries | map("\(.key)=\(.value)") | join(",")),
		  "\($l0) -> \($l1)"] | @tsv' "$dir/run$n-$side.json"
	[[ -n ${AB_JSON_DIR:-} ]] && cp "$dir/run$n-$side.json" "$AB_JSON_DIR/"
done
[[ -n ${AB_PROFILE_DIR:-} ]] && cp "$dir/server-A" "$dir/server-B" "$AB_PROFILE_DIR/"
for side in A B; do kill -TERM "${spid[$side]}"; done
for side in A B; do
	wait "${spid[$side]}" || die "server $side did not exit 0 on SIGTERM"
done
