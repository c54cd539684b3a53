#!/usr/bin/env bash
# `make bench`: starts a `strata dev` broker in a temporary directory and drives
# it with the project's load generator (`strata bench`), RUNS times each:
#   produce: 1 KiB records, batching, acks=1, 4 partitions, as fast as possible
#   consume: the same topic from the beginning to the tail
#   latency: produce with acks=all at a fixed rate, for latency percentiles
# It prints the machine's description first; BENCHMARKS.md records the medians.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
STRATA=${STRATA:-bin/strata}
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-2000000}
RATE=${RATE:-50000}

dir=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
grpc=127.0.0.1:$(free_port); http=127.0.0.1:$(free_port); etcd=127.0.0.1:$(free_port)

echo "== machine"
echo "cpu:    $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "kernel: $(uname -r)"
echo "disk:   $(df -h "$dir" | awk 'NR==2 {print $1" ("$2")"}')"
echo "go:     $(go version | cut -d' ' -f3)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"

"$STRATA" dev --data-dir "$dir/data" --grpc-addr "$grpc" --http-addr "$http" \
  --etcd-client-addr "$etcd" --log-level warn 2>"$dir/broker.log" &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://$http/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/broker.log"; exit 1; }
  sleep 0.2
done

for run in $(seq 1 "$RUNS"); do
  topic=bench-$run
  echo "== run $run: produce (acks=1, $RECORDS x 1 KiB, 4 partitions)"
  "$STRATA" bench produce --bootstrap-server "$grpc" --topic "$topic" --partitions 4 \
    --records "$RECORDS" --record-size 1024 --acks 1
  echo "== run $run: consume (from the beginning to the tail)"
  "$STRATA" bench consume --bootstrap-server "$grpc" --topic "$topic"
  echo "== run $run: latency (acks=all at $RATE records/s for 10 s)"
  "$STRATA" bench produce --bootstrap-server "$grpc" --topic "$topic-lat" --partitions 4 \
    --duration 10s --record-size 1024 --acks all --throughput "$RATE"
  "$STRATA" topics delete "$topic" --bootstrap-server "$grpc" >/dev/null
  "$STRATA" topics delete "$topic-lat" --bootstrap-server "$grpc" >/dev/null
done
