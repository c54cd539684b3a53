#!/usr/bin/env bash
# `make bench`: starts a `strata dev` broker in a temporary directory and drives
# it with the project's load generator (`strata bench`), RUNS times each:
#   produce: 1 KiB records, batching, acks=1, 4 partitions, as fast as possible
#   consume: the same topic from the beginning to the tail
#   latency: produce with acks=all at a fixed rate, for latency percentiles
# then on a three-broker cluster (`strata testenv`, brokers behind its proxies):
#   rf3:      RF=3, acks=all at a fixed RF3_RATE records/s of 1 KiB (20 MiB/s),
#             with linger 0 and the default 5 ms
#   failover: SIGKILL of a partition leader under acks=all load, FAILOVERS times
#             (BenchmarkLeaderFailover in testenv/)
#   rebalance: acks=all p99 with and without `strata cluster rebalance` moving
#             replicas to a fourth broker, REBALANCE_PAIRS pairs
#             (BenchmarkProduceP99DuringRebalance in testenv/)
# then Go benchmarks: the Kafka frontend, cold reads from MinIO, and log
# compaction: one cleaning pass over a 64 MiB dirty log, COMPACTION_RUNS
# times (BenchmarkCompaction in compaction/), and acks=all produce latency
# at a fixed rate with the cleaner off, on and throttled, RUNS times
# (BenchmarkProduceP99DuringCompaction in broker/).
# It prints the machine's description first; BENCHMARKS.md records the medians.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
STRATA=${STRATA:-bin/strata}
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-2000000}
RATE=${RATE:-50000}
RF3_RATE=${RF3_RATE:-20480}
FAILOVERS=${FAILOVERS:-5}
REBALANCE_PAIRS=${REBALANCE_PAIRS:-5}
COMPACTION_RUNS=${COMPACTION_RUNS:-5}

dir=$(mktemp -d)
pid=
tpid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$tpid" ]; then kill -INT "$tpid" 2>/dev/null || true; wait "$tpid" 2>/dev/null || true; fi
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

kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

echo "== three-broker cluster (strata testenv --minio=false)"
"$STRATA" testenv --brokers 3 --minio=false --dir "$dir/cluster" >"$dir/testenv.out" 2>&1 &
tpid=$!
for _ in $(seq 1 150); do
  [ -f "$dir/cluster/env.json" ] && break
  kill -0 "$tpid" 2>/dev/null || { cat "$dir/testenv.out"; exit 1; }
  sleep 0.2
done
boot=$(python3 -c 'import json,sys; print(",".join(b["grpc_addr"] for b in json.load(open(sys.argv[1]))["brokers"]))' "$dir/cluster/env.json")
for run in $(seq 1 "$RUNS"); do
  # linger 0 sends each record at once: the latency is the broker's and the
  # replication's; the default 5 ms linger adds the client's batching wait.
  for linger in 0 5ms; do
    echo "== run $run: RF=3 latency (acks=all at $RF3_RATE records/s of 1 KiB for 10 s, 4 partitions, linger $linger)"
    "$STRATA" bench produce --bootstrap-server "$boot" --topic "rf3-$run-$linger" --partitions 4 --replication-factor 3 \
      --duration 10s --record-size 1024 --acks all --throughput "$RF3_RATE" --linger "$linger"
  done
done
kill -INT "$tpid"; wait "$tpid" 2>/dev/null || true; tpid=

echo "== failover: SIGKILL of the leader, $FAILOVERS times (RF=3, acks=all, a record per ms)"
STRATA_BIN="$(realpath "$STRATA")" go test -run '^$' -bench BenchmarkLeaderFailover -benchtime "${FAILOVERS}x" ./testenv/ | grep -E 'Benchmark|failovers'

echo "== produce p99 during a rebalance: acks=all, 4,000 records/s of 1 KiB for 6 s, a 4th broker added, with and without strata cluster rebalance, $REBALANCE_PAIRS pairs"
STRATA_BIN="$(realpath "$STRATA")" go test -run '^$' -bench BenchmarkProduceP99DuringRebalance -benchtime "${REBALANCE_PAIRS}x" ./testenv/ 2>&1 | grep -E 'Benchmark|pair'

echo "== Kafka protocol: franz-go producer (idempotent, acks=all, linger 1 ms) and consumer, 1 KiB records, one partition, in-process broker"
go test -run '^$' -bench 'BenchmarkKafka' -benchtime 200000x -count "$RUNS" ./broker/kafkaapi/ | grep -E '^Benchmark'

echo "== cold reads from MinIO against raw GETs of the same bytes"
STRATA_BIN="$(realpath "$STRATA")" go test -run '^$' -bench BenchmarkColdRead -benchtime 1x -count "$RUNS" ./testenv/ | grep -E '^Benchmark'

echo "== compaction: one cleaning pass over a dirty log of 64 MiB of records (20,000 keys, 1 KiB values), codecs none, lz4, zstd, on this disk"
go test -run '^$' -bench BenchmarkCompaction -benchtime 3x -count "$COMPACTION_RUNS" -timeout 30m ./compaction/ | grep -E '^Benchmark'

echo "== produce latency during compaction: acks=all, 500 requests/s of 16 x 1 KiB for 10 s, 200 MiB dirty backlog; cleaner off, on, throttled to 20 MiB/s"
go test -run '^$' -bench BenchmarkProduceP99DuringCompaction -benchtime 1x -count "$RUNS" -timeout 30m ./broker/ | grep -E '^Benchmark'
