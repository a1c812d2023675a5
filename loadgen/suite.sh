#!/bin/bash
# The benchmark suite behind docs/BENCHMARKS.md: builds the relay and the load
# generator, then runs every scenario against a fresh relay on 127.0.0.1,
# writing each run's summary and JSON line to OUT/<scenario>.txt.
#
#   loadgen/suite.sh [OUT] [scenario...]     (from the repo root; default OUT=/tmp/heartline-bench)
#
# Scenarios: idle5k idle19k fan10 fan100 closed16 accept churn storm10k storm10k-engine
# (default: all). Takes about 7 minutes. It stops only the relays it started (by pid).
# Several relays on one Redis (the relay needs --redis-url; not in the default
# list): fan10-3relays accept100-3relays-always accept100-3relays-everysec
# failover10k-3relays rolling-3relays rolling3k-3relays idle5k-redis idle19k-redis
# redis-room-memory. They
# start their own redis-server on 127.0.0.1:16379 with its data in OUT/redis.
# HEARTLINE_SUITE_PORT (18080) and HEARTLINE_SUITE_REDIS_PORT (16379) move
# the ports, so two suites can run side by side. HEARTLINE_SUITE_CLUSTER_FLAGS
# adds flags to every cluster relay, HEARTLINE_SUITE_CLUSTER_ENV variables to
# their environment (an A/B of one setting, e.g. GOMAXPROCS=1).
set -euo pipefail
out=${1:-/tmp/heartline-bench}
shift || true
scenarios=${*:-idle5k idle19k fan10 fan100 closed16 accept churn storm10k storm10k-engine}
mkdir -p "$out"
bin=$(mktemp -d)
trap 'stop_cluster; stop_relay; rm -rf "$bin"' EXIT
go build -o "$bin/heartline-relay" ./relay
go build -o "$bin/heartline-load" ./loadgen
port=${HEARTLINE_SUITE_PORT:-18080} # relays listen here (a cluster on the next ports)
data="$out/relay-data"
relay_pid=
# The load generator is one host dialling from 16 loopback addresses: lift the
# relay's per-address caps (--max-conns stays explicit where it matters).
per_ip=(--max-conns-per-ip -1 --max-room-members-per-ip -1)

start_relay() { # flags...
	stop_relay
	rm -rf "$data" && mkdir -p "$data"
	"$bin/heartline-relay" --listen "127.0.0.1:$port" --data-dir "$data" --log-level warn "${per_ip[@]}" "$@" >"$out/relay.log" 2>&1 &
	relay_pid=$!
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "the relay did not start: see $out/relay.log" >&2
	exit 1
}
stop_relay() {
	if [ -n "$relay_pid" ]; then
		kill "$relay_pid" 2>/dev/null || true
		wait "$relay_pid" 2>/dev/null || true
		relay_pid=
	fi
}
run() { # name mode flags...
	local name=$1
	shift
	echo "== $name $(date -u +%FT%TZ) load $(cut -d' ' -f1 /proc/loadavg)"
	"$bin/heartline-load" "$@" -url "ws://127.0.0.1:$port/ws" -pid "$relay_pid" -q >"$out/$name.txt" 2>&1 || true
	grep -v '^{' "$out/$name.txt"
}
# storm: 10,000 members through a relay restart the load generator does itself
# (SIGTERM, start again on the same data); extra flags go to heartline-load.
storm() { # name flags...
	local name=$1
	shift
	stop_relay
	rm -rf "$data" && mkdir -p "$data"
	echo "== $name $(date -u +%FT%TZ) load $(cut -d' ' -f1 /proc/loadavg)"
	"$bin/heartline-load" storm "$@" -url "ws://127.0.0.1:$port/ws" -n 10000 -per-room 100 -senders 20 -rate 2 \
		-before 10s -after 5s -storm-timeout 90s -relay-log "$out/relay-$name.log" -q \
		-relay-cmd "$bin/heartline-relay --listen 127.0.0.1:$port --data-dir $data --max-conns 19500 ${per_ip[*]} --log-level warn --stun-port 0" \
		>"$out/$name.txt" 2>&1 || true
	grep -v '^{' "$out/$name.txt"
}
fanout_relay=(--max-room-members 1100 --rate 100000 --burst 100000)

# Three relays on one Redis (AOF with the given appendfsync), on ports
# port+1..port+3, each with its own data dir.
redis_port=${HEARTLINE_SUITE_REDIS_PORT:-16379}
redis_pid=
cluster_n=3 # relays start_cluster starts
cluster_pids=()
cluster_cmds=() # their command lines (for the rolling restart)
cluster_urls=
start_cluster() { # always|everysec relay-flags...
	local fsync=$1
	shift
	stop_cluster
	stop_relay
	local help # read whole: grep -q closing the pipe early fails the pipeline under pipefail
	help=$("$bin/heartline-relay" --help 2>&1 || true)
	if ! grep -q -- '--redis-url' <<<"$help"; then
		echo "this relay has no --redis-url: the cluster scenarios need the Redis engine" >&2
		return 1
	fi
	command -v redis-server >/dev/null || { echo "redis-server is not installed (scripts/deps.sh)" >&2; return 1; }
	rm -rf "$out/redis" && mkdir -p "$out/redis"
	printf '%s\n' "port $redis_port" "bind 127.0.0.1" "protected-mode no" "dir $out/redis" \
		"logfile $out/redis/redis.log" 'save ""' "appendonly yes" "appendfsync $fsync" \
		"maxmemory-policy noeviction" >"$out/redis/redis.conf"
	redis-server "$out/redis/redis.conf" &
	redis_pid=$!
	for _ in $(seq 1 100); do
		redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	cluster_urls=
	cluster_cmds=()
	local n p
	for n in $(seq 1 "$cluster_n"); do
		p=$((port + n))
		rm -rf "$data$n" && mkdir -p "$data$n"
		local cmd=(env ${HEARTLINE_SUITE_CLUSTER_ENV:-} "$bin/heartline-relay" --listen "127.0.0.1:$p" --data-dir "$data$n" --redis-url "redis://127.0.0.1:$redis_port/0"
			--grace 30s --redis-dead-after 10s --max-conns 19500 --log-level warn --stun-port 0 "${per_ip[@]}" "$@" ${HEARTLINE_SUITE_CLUSTER_FLAGS:-})
		cluster_cmds+=("${cmd[*]}")
		"${cmd[@]}" >"$out/relay$n.log" 2>&1 &
		cluster_pids+=($!)
		for _ in $(seq 1 100); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then break; fi
			sleep 0.1
		done
		cluster_urls+="${cluster_urls:+,}ws://127.0.0.1:$p/ws"
	done
}
stop_cluster_relays() {
	local p
	for p in "${cluster_pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	cluster_pids=()
}
stop_cluster() {
	stop_cluster_relays
	if [ -n "$redis_pid" ]; then
		kill "$redis_pid" 2>/dev/null || true
		wait "$redis_pid" 2>/dev/null || true
		redis_pid=
	fi
}
# The members are spread over the three relays; their CPU and RSS are summed.
run_cluster() { # name mode flags...
	local name=$1
	shift
	echo "== $name $(date -u +%FT%TZ) load $(cut -d' ' -f1 /proc/loadavg)"
	"$bin/heartline-load" "$@" -url "$cluster_urls" -q >"$out/$name.txt" 2>&1 || true
	grep -v '^{' "$out/$name.txt"
	echo "redis: $(redis-cli -p "$redis_port" info memory | grep '^used_memory_human' | tr -d '\r'), CPU since it started: $(redis-cli -p "$redis_port" info cpu | grep -E '^used_cpu_(sys|user):' | tr -d '\r' | tr '\n' ' ')"
}

# room_keys prints every key matching a pattern with its type and MEMORY USAGE.
room_keys() { # pattern
	local k
	for k in $(redis-cli -p "$redis_port" --scan --pattern "$1"); do
		echo "  $k: $(redis-cli -p "$redis_port" type "$k") $(redis-cli -p "$redis_port" hlen "$k" 2>/dev/null | grep -v WRONGTYPE) $(redis-cli -p "$redis_port" memory usage "$k" samples 0) bytes"
	done
}
# room_members: what 1,000 members of one room cost in Redis, measured while
# they are held idle.
room_members() {
	"$bin/heartline-load" idle -url "$cluster_urls" -n 1000 -per-room 1000 -hold 20s -q >"$out/redis-room-members.txt" 2>&1 &
	local idle_pid=$! k n
	for _ in $(seq 1 600); do
		k=$(redis-cli -p "$redis_port" --scan --pattern 'hl:{r:idle-*}:members' | head -1)
		n=$([ -n "$k" ] && redis-cli -p "$redis_port" hlen "$k" || echo 0)
		[ "$n" -ge 1000 ] && break
		sleep 0.1
	done
	echo "one room with $n members held idle:" | tee -a "$out/redis-room-memory.txt"
	room_keys 'hl:{r:idle-*' | tee -a "$out/redis-room-memory.txt"
	wait "$idle_pid" || true
}

for s in $scenarios; do
	case $s in
	idle5k) start_relay --max-conns 19500 && run idle5k idle -n 5000 -hold 30s ;;
	idle19k) start_relay --max-conns 19500 && run idle19k idle -n 19000 -hold 30s ;;
	fan10) start_relay "${fanout_relay[@]}" && run fan10 fanout -receivers 1000 -senders 10 -rate 10 -duration 30s ;;
	fan100) start_relay "${fanout_relay[@]}" && run fan100 fanout -receivers 1000 -senders 10 -rate 100 -duration 20s ;;
	closed16) start_relay "${fanout_relay[@]}" && run closed16 fanout -receivers 1000 -senders 1 -rate 0 -window 16 -duration 20s ;;
	accept) start_relay "${fanout_relay[@]}" && run accept fanout -receivers 1 -senders 20 -rate 0 -window 100 -echo ack -duration 15s ;;
	churn) start_relay "${fanout_relay[@]}" && run churn churn -members 500 -senders 10 -rate 2 -churn 20 -stay 2s -abrupt 0.5 -duration 40s ;;
	storm10k) storm storm10k ;;
	# The same storm with shared/client engines: the apps' own backoff, resume and outbox.
	storm10k-engine) storm storm10k-engine -engine ;;
	# One room of 1,000 receivers spread evenly over three relays on one Redis.
	fan10-3relays) start_cluster always "${fanout_relay[@]}" &&
		run_cluster fan10-3relays fanout -receivers 1000 -senders 10 -rate 10 -duration 30s ;;
	# Accepted messages per second through Redis, 100 rooms, 100 senders, each
	# room with 20 messages awaiting their ack (ACCEPT_WINDOW, total over the
	# rooms): a relay publishes what waits as one batch, so this measures
	# throughput; with 200 (2 per room) the rate is bound by the round trip.
	accept100-3relays-always) start_cluster always "${fanout_relay[@]}" &&
		run_cluster accept100-3relays-always fanout -rooms 100 -receivers 100 -senders 100 -rate 0 -window ${ACCEPT_WINDOW:-2000} -echo ack -duration 15s ;;
	accept100-3relays-everysec) start_cluster everysec "${fanout_relay[@]}" &&
		run_cluster accept100-3relays-everysec fanout -rooms 100 -receivers 100 -senders 100 -rate 0 -window ${ACCEPT_WINDOW:-2000} -echo ack -duration 15s ;;
	# Idle memory per connection with the Redis engine: one relay on Redis
	# (compare with idle5k, bbolt, run next to it).
	idle5k-redis) cluster_n=1 start_cluster always &&
		run_cluster idle5k-redis idle -n 5000 -hold 30s ;;
	idle19k-redis) cluster_n=1 start_cluster always &&
		run_cluster idle19k-redis idle -n 19000 -hold 30s ;;
	# Redis memory per room: one room filled with 1,000 messages of 200 bytes,
	# then MEMORY USAGE of each of its keys.
	redis-room-memory) cluster_n=1 start_cluster always "${fanout_relay[@]}" &&
		run_cluster redis-room-memory fanout -receivers 1 -senders 1 -rate 100 -duration 10s -warmup 0s -size 200 &&
		room_keys 'hl:{r:fan-*' | tee -a "$out/redis-room-memory.txt" &&
		room_members ;;
	# 10,000 shared/client engines over three relays, each dialling its own
	# relay first and the next when refused; the second relay is killed
	# (SIGKILL) under traffic. -after covers --redis-dead-after and --grace,
	# so a member wrongly taken for gone would be seen leaving.
	failover10k-3relays) start_cluster always "${fanout_relay[@]}" &&
		run_cluster failover10k-3relays failover -n 10000 -per-room 100 -senders 20 -rate 2 \
			-before 15s -after 45s -back-timeout 60s -kill-pid "${cluster_pids[1]}" ;;
	# The same engines while the load generator restarts the three relays one
	# after the other (SIGTERM, wait for the exit, start again).
	rolling-3relays) start_cluster always "${fanout_relay[@]}" && stop_cluster_relays &&
		run_cluster rolling-3relays rolling -n 10000 -per-room 100 -senders 20 -rate 2 \
			-before 15s -between 10s -after 45s -back-timeout 60s -relay-log-dir "$out" \
			-relay-cmd "${cluster_cmds[0]}" -relay-cmd "${cluster_cmds[1]}" -relay-cmd "${cluster_cmds[2]}" ;;
	# The same rolling restart with 3,000 engines: what scale does to it.
	rolling3k-3relays) start_cluster always "${fanout_relay[@]}" && stop_cluster_relays &&
		run_cluster rolling3k-3relays rolling -n 3000 -per-room 100 -senders 20 -rate 2 \
			-before 15s -between 10s -after 45s -back-timeout 60s -relay-log-dir "$out" \
			-relay-cmd "${cluster_cmds[0]}" -relay-cmd "${cluster_cmds[1]}" -relay-cmd "${cluster_cmds[2]}" ;;
	*) echo "unknown scenario $s" >&2 ;;
	esac
done
echo "== done $(date -u +%FT%TZ); results in $out"
