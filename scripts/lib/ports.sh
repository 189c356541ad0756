# ports.sh: the loopback port helpers of the scripts. Source it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/ports.sh"

# port_in_use reports whether something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port prints a loopback TCP port nothing listens on (never 5432 or 6379,
# the machine's shared Postgres and Redis).
free_port() {
	local port i
	for ((i = 0; i < 200; i++)); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if [[ $port -ne 5432 && $port -ne 6379 ]] && ! port_in_use "$port"; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	return 1
}

# wait_port waits until something listens on 127.0.0.1:$1, for up to $2
# tenths of a second (default 600: a minute); it fails when none came.
wait_port() {
	local i
	for ((i = 0; i < ${2:-600}; i++)); do
		port_in_use "$1" && return 0
		sleep 0.1
	done
	return 1
}
