#!/usr/bin/python3
"""A kafka-python 2.0.2 consumer-group member for testenv/kafkatests/groups_test.go.

Usage: group_consumer.py BOOTSTRAP TOPIC GROUP NAME auto|manual DELAY_S [SESSION_TIMEOUT_MS]

Subscribes to TOPIC in GROUP (auto_offset_reset=earliest) and "processes"
every record by sleeping DELAY_S seconds. In manual mode
(enable_auto_commit=False) it commits each record's offset + 1 right after
processing it; in auto mode kafka-python auto-commits every second (and on
rebalance). Runs until SIGTERM (then closes: commits in auto mode, leaves the
group) or SIGKILL.

Prints one JSON line per event on stdout, flushed at once:
  {"event": "started", "name": NAME}
  {"event": "assigned", "name": NAME, "partitions": [...], "committed": {"P": offset or -1}}
      (the group's committed offsets as this member fetched them on assignment)
  {"event": "revoked", "name": NAME, "partitions": [...]}
  {"event": "record", "name": NAME, "partition": P, "offset": O, "key": K}
      (after processing it)
  {"event": "committed", "name": NAME, "partition": P, "offset": O + 1}
      (manual mode, after the commit returned; "commit-failed" when the
      partition went to another member meanwhile)
  {"event": "closed", "name": NAME}
"""

import json
import signal
import sys
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError


def emit(**event):
    print(json.dumps(event), flush=True)


def main():
    bootstrap, topic, group, name, mode, delay = sys.argv[1:7]
    delay = float(delay)
    session_timeout_ms = int(sys.argv[7]) if len(sys.argv) > 7 else 6000
    manual = mode == "manual"
    stop = {"now": False}

    def on_term(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=name,
        group_id=group,
        enable_auto_commit=not manual,
        auto_commit_interval_ms=1000,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=min(1000, session_timeout_ms // 3),
        max_poll_records=1,
    )

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            emit(event="revoked", name=name, partitions=sorted(tp.partition for tp in revoked))

        def on_partitions_assigned(self, assigned):
            committed = {}
            for tp in assigned:
                c = consumer.committed(tp)
                committed[str(tp.partition)] = -1 if c is None else c
            emit(event="assigned", name=name, partitions=sorted(tp.partition for tp in assigned), committed=committed)

    consumer.subscribe([topic], listener=Listener())
    emit(event="started", name=name)
    try:
        while not stop["now"]:
            for tp, recs in consumer.poll(timeout_ms=200).items():
                for r in recs:
                    time.sleep(delay)  # the processing
                    emit(event="record", name=name, partition=tp.partition, offset=r.offset,
                         key=r.key.decode() if r.key is not None else None)
                    if manual:
                        try:
                            consumer.commit({TopicPartition(topic, tp.partition): OffsetAndMetadata(r.offset + 1, None)})
                        except CommitFailedError as e:  # the partition went to another member meanwhile
                            emit(event="commit-failed", name=name, partition=tp.partition, offset=r.offset + 1, error=str(e))
                            continue
                        emit(event="committed", name=name, partition=tp.partition, offset=r.offset + 1)
    finally:
        consumer.close()
        emit(event="closed", name=name)


if __name__ == "__main__":
    main()
