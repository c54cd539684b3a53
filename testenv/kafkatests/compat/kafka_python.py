#!/usr/bin/python3
"""kafka-python 2.0.2 (Debian's python3-kafka) against a Strata cluster.

Usage: kafka_python.py BOOTSTRAP TOPIC BROKERS REPLICATION_FACTOR

Creates TOPIC (3 partitions), checks the metadata, produces 10 keyed and 10
unkeyed records, consumes them back by explicit assignment (no group), checks
ListOffsets, consumes TOPIC through a consumer group and commits (then a
second consumer of the group must read only the records produced after the
commit), deletes TOPIC. kafka-python 2.0.2 has no transactional producer:
"transactions", when COMPAT_TRANSACTIONS is set, is not applicable. Prints
one JSON line per capability on stdout:
{"capability": ..., "ok": true|false, "detail": ...}. The protocol is the one
testenv/kafkatests/compat_test.go parses; the other clients of the matrix print the same.
"""

import json
import os
import logging
import sys
import threading
import time
import traceback

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAuthorizationFailedError
from kafka.partitioner.default import murmur2

PARTITIONS = 3
TIMEOUT_S = 20
GROUP_TIMEOUT_S = 30
GROUP_CHECK_TIMEOUT_S = 65


def security():
    """How to connect, from the COMPAT_* environment compat_test.go sets for
    the secured matrix; PLAINTEXT when it is unset."""
    env = os.environ
    protocol = env.get("COMPAT_SECURITY_PROTOCOL", "PLAINTEXT")
    kw = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        kw["ssl_cafile"] = env["COMPAT_SSL_CAFILE"]
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        kw["sasl_mechanism"] = env["COMPAT_SASL_MECHANISM"]
        kw["sasl_plain_username"] = env["COMPAT_SASL_USERNAME"]
        kw["sasl_plain_password"] = env["COMPAT_SASL_PASSWORD"]
    return kw


SECURITY = security()
DENIED_TOPIC = os.environ.get("COMPAT_DENIED_TOPIC", "")


def report(capability, ok, detail, na=False):
    res = {"capability": capability, "ok": bool(ok), "detail": detail}
    if na:
        res["na"] = True
    print(json.dumps(res), flush=True)


def expected_records():
    """The 20 records every client produces: keys key-0..key-4 twice each."""
    keyed = [("key-%d" % (i % 5), "keyed-%d" % i) for i in range(10)]
    unkeyed = [(None, "unkeyed-%d" % i) for i in range(10)]
    return keyed + unkeyed


def key_partition(key):
    """Kafka's default partitioner for a keyed record (murmur2, positive)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def check(capability, fn, timeout_s=None, stage=None):
    """Runs fn and reports its (ok, detail). With timeout_s, fn runs in a
    daemon thread and a hang (kafka-python retries some calls forever, e.g.
    a commit without a coordinator) fails the capability after timeout_s,
    naming stage["now"], where fn says it is."""
    if timeout_s is not None:
        out = {}

        def run():
            out["result"] = check_result(fn)

        th = threading.Thread(target=run, daemon=True)
        th.start()
        th.join(timeout_s)
        ok, detail = out.get("result", (False, "hung for %ds in: %s" % (timeout_s, (stage or {}).get("now", "?"))))
    else:
        ok, detail = check_result(fn)
    report(capability, ok, detail)
    return ok


def check_result(fn):
    try:
        return fn()
    except Exception as e:  # a client exception is this capability's failure
        traceback.print_exc(file=sys.stderr)
        return False, "%s: %s" % (type(e).__name__, e)


def main():
    bootstrap, topic, brokers, rf = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    state = {"counts": None, "start_ms": None}
    group_stage = {"now": "starting"}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **SECURITY, client_id="compat-kafka-python",
                             request_timeout_ms=TIMEOUT_S * 1000)

    def create_topic():
        resp = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=rf)],
                                   timeout_ms=TIMEOUT_S * 1000)
        errs = [e for e in resp.topic_errors if e[1] != 0]
        if errs:
            return False, "CreateTopics v%d errors: %s" % (resp.API_VERSION, errs)
        return True, "CreateTopics v%d: %s, %d partitions, RF %d" % (resp.API_VERSION, topic, PARTITIONS, rf)

    def metadata():
        cluster = admin.describe_cluster()
        ids = sorted(b["node_id"] for b in cluster["brokers"])
        if len(set(ids)) != brokers:
            return False, "brokers %s, want %d" % (ids, brokers)
        if cluster.get("controller_id") not in ids:
            return False, "controller %s is not a listed broker" % cluster.get("controller_id")
        deadline = time.time() + TIMEOUT_S
        while True:
            topics = [t for t in admin.describe_topics() if t["topic"] == topic]
            parts = topics[0]["partitions"] if topics else []
            leaders = sorted(p["leader"] for p in parts if p["error_code"] == 0)
            if len(parts) == PARTITIONS and all(leader in ids for leader in leaders) and len(leaders) == PARTITIONS:
                break
            if time.time() > deadline:
                return False, "topic %s in metadata: %s" % (topic, topics)
            time.sleep(0.2)
        return True, "brokers %s, controller %d; %s has %d partitions, leaders %s" % (
            ids, cluster["controller_id"], topic, len(parts), leaders)

    def produce():
        producer = KafkaProducer(bootstrap_servers=bootstrap, **SECURITY, client_id="compat-kafka-python",
                                 key_serializer=lambda k: None if k is None else k.encode(),
                                 value_serializer=lambda v: v.encode())
        try:
            state["start_ms"] = int(time.time() * 1000) - 1000
            bad, counts = [], [0] * PARTITIONS
            for key, value in expected_records():
                md = producer.send(topic, key=key, value=value).get(timeout=10)
                counts[md.partition] += 1
                if key is not None and md.partition != key_partition(key):
                    bad.append("%s -> %d, murmur2 says %d" % (key, md.partition, key_partition(key)))
        finally:
            producer.close(timeout=10)
        state["counts"] = counts
        if bad:
            return False, "keyed records off their murmur2 partition: %s" % bad
        return True, "20 records acked (acks=1 default), per partition %s; keys on murmur2 partitions" % counts

    def consume():
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, **SECURITY, client_id="compat-kafka-python",
                                 group_id=None, enable_auto_commit=False)
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            consumer.seek_to_beginning()
            got = []
            deadline = time.time() + TIMEOUT_S
            while len(got) < 20 and time.time() < deadline:
                for tp, recs in consumer.poll(timeout_ms=500).items():
                    for r in recs:
                        got.append((tp.partition, r.key and r.key.decode(), r.value.decode()))
        finally:
            consumer.close()
        return compare(got, state)

    def list_offsets():
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, **SECURITY, client_id="compat-kafka-python", group_id=None)
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            earliest = consumer.beginning_offsets(tps)
            latest = consumer.end_offsets(tps)
            past = consumer.offsets_for_times({tp: state["start_ms"] or 0 for tp in tps})
            future = consumer.offsets_for_times({tp: int(time.time() * 1000) + 3600 * 1000 for tp in tps})
        finally:
            consumer.close()
        return check_offsets(
            [earliest[tp] for tp in tps], [latest[tp] for tp in tps],
            [None if past[tp] is None else past[tp].offset for tp in tps],
            [None if future[tp] is None else future[tp].offset for tp in tps],
            state["counts"])

    def group():
        """A group consumer (enable_auto_commit=False) reads everything and
        commits; 5 more records are produced; a new consumer of the same group
        must read exactly those."""
        gid = topic + "-group"
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        group_stage["now"] = "end offsets"
        probe = KafkaConsumer(bootstrap_servers=bootstrap, **SECURITY, client_id="compat-kafka-python", group_id=None)
        try:
            ends = probe.end_offsets(tps)
        finally:
            probe.close()
        end = [ends[tp] for tp in tps]

        def read(which, done):
            group_stage["now"] = "%s consumer: joining and polling" % which
            consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, **SECURITY, client_id="compat-kafka-python",
                                     group_id=gid, enable_auto_commit=False, auto_offset_reset="earliest")
            got = []
            try:
                deadline = time.time() + GROUP_TIMEOUT_S
                while not done(got):
                    if time.time() > deadline:
                        raise TimeoutError("group %s: read %d records before the deadline: %s" % (gid, len(got), got))
                    for tp, recs in consumer.poll(timeout_ms=500).items():
                        for r in recs:
                            got.append((tp.partition, r.offset, r.key and r.key.decode(), r.value.decode()))
                group_stage["now"] = "%s consumer: commit() after %d records" % (which, len(got))
                consumer.commit()
            finally:
                group_stage["now"] = "%s consumer: close()" % which
                consumer.close()  # leaves the group
            return got

        first = read("first", lambda got: len(got) >= sum(end))
        # What the group coordinator holds (OffsetFetch through the admin client).
        group_stage["now"] = "list_consumer_group_offsets"
        offsets = admin.list_consumer_group_offsets(gid, partitions=tps)
        committed = [offsets[tp].offset if tp in offsets else -1 for tp in tps]
        group_stage["now"] = "producing the group records"
        producer = KafkaProducer(bootstrap_servers=bootstrap, **SECURITY, client_id="compat-kafka-python",
                                 key_serializer=lambda k: k.encode(), value_serializer=lambda v: v.encode())
        try:
            for key, value in group_records():
                producer.send(topic, key=key, value=value).get(timeout=10)
        finally:
            producer.close(timeout=10)
        second = read("second", lambda got: len(got) >= len(group_records()))
        return check_group(end, first, committed, second)

    def delete_topic():
        resp = admin.delete_topics([topic], timeout_ms=TIMEOUT_S * 1000)
        errs = [e for e in resp.topic_error_codes if e[1] != 0]
        if errs:
            return False, "DeleteTopics v%d errors: %s" % (resp.API_VERSION, errs)
        deadline = time.time() + TIMEOUT_S
        while topic in admin.list_topics():
            if time.time() > deadline:
                return False, "%s still listed after DeleteTopics" % topic
            time.sleep(0.2)
        return True, "DeleteTopics v%d: %s gone from metadata" % (resp.API_VERSION, topic)

    def denied():
        # kafka-python 2.0.2 records a topic as unauthorized only from a
        # Metadata response naming other topics too: asked about that one
        # topic alone, it retries until max_block_ms, against Kafka as
        # here. An application writing to a topic it may write and one it
        # may not gets the error at once, which is what this checks.
        producer = KafkaProducer(bootstrap_servers=bootstrap, **SECURITY, client_id="compat-kafka-python",
                                 max_block_ms=TIMEOUT_S * 1000)
        producer.send(topic, value=b"allowed").get(timeout=TIMEOUT_S)
        start = time.time()
        try:
            producer.send(DENIED_TOPIC, value=b"denied").get(timeout=TIMEOUT_S)
        except TopicAuthorizationFailedError as e:
            return True, "refused in %.3fs: %r" % (time.time() - start, e)
        except Exception as e:
            return False, "produce to %s: %r, want TopicAuthorizationFailedError" % (DENIED_TOPIC, e)
        finally:
            producer.close(timeout=10)
        return False, "produce to %s, which the user may not write, succeeded" % DENIED_TOPIC

    try:
        check("create-topic", create_topic)
        check("metadata", metadata)
        check("produce", produce)
        check("consume", consume)
        check("list-offsets", list_offsets)
        check("group", group, timeout_s=GROUP_CHECK_TIMEOUT_S, stage=group_stage)
        if DENIED_TOPIC:
            check("denied", denied, timeout_s=2 * TIMEOUT_S + 5, stage={"now": "producing to the denied topic"})
        if os.environ.get("COMPAT_TRANSACTIONS"):
            # kafka-python's transactional producer came in 2.2.0.
            report("transactions", False, "no transactional producer in kafka-python 2.0.2", na=True)
        check("delete-topic", delete_topic)
    finally:
        admin.close()


def compare(got, state):
    """Checks the consumed (partition, key, value) triples against expected_records."""
    want = sorted(expected_records(), key=lambda kv: kv[1])
    have = sorted(((k, v) for _, k, v in got), key=lambda kv: kv[1])
    if have != want:
        return False, "read %d records, want 20: %s" % (len(got), have)
    bad = ["%s on %d" % (k, p) for p, k, _ in got if k is not None and p != key_partition(k)]
    if bad:
        return False, "keyed records off their murmur2 partition: %s" % bad
    counts = [0] * PARTITIONS
    for p, _, _ in got:
        counts[p] += 1
    state["counts"] = counts
    return True, "read all 20 back from offset 0, per partition %s" % counts


def group_records():
    """The records produced between the two group consumers: keys key-0..key-4."""
    return [("key-%d" % i, "group-%d" % i) for i in range(5)]


def check_group(end, first, committed, second):
    """first must hold every offset below end of every partition; the
    committed offsets must be end; second exactly group_records(), none of
    the records read before."""
    for p in range(PARTITIONS):
        offsets = {o for q, o, _, _ in first if q == p}
        if offsets != set(range(end[p])):
            return False, "first group consumer read offsets %s of partition %d, want 0..%d" % (
                sorted(offsets), p, end[p] - 1)
    if committed != end:
        return False, "committed offsets %s after the first group consumer read everything, want the end offsets %s" % (
            committed, end)
    have = sorted(v for _, _, _, v in second)
    want = sorted(v for _, v in group_records())
    old = ["%d@%d" % (p, o) for p, o, _, _ in second if o < end[p]]
    if have != want or old:
        return False, "second group consumer read %s (committed records re-read: %s), want exactly %s" % (have, old, want)
    bad = ["%s on %d" % (k, p) for p, _, k, _ in second if p != key_partition(k)]
    if bad:
        return False, "keyed records off their murmur2 partition: %s" % bad
    return True, "first consumer read all %d, committed %s; the second read exactly the %d new ones" % (
        len(first), committed, len(second))


def check_offsets(earliest, latest, past, future, counts):
    """earliest must be 0; latest the partition's record count; by time, a
    timestamp before the produce finds offset 0 of a non-empty partition, and
    one after it finds nothing."""
    detail = "earliest %s, latest %s, by time (before) %s, (after) %s" % (earliest, latest, past, future)
    want_latest = counts if counts else None
    if any(o != 0 for o in earliest):
        return False, detail + ": earliest must be 0"
    if want_latest is not None and latest != want_latest:
        return False, detail + ": latest must be %s" % want_latest
    if sum(latest) != 20:
        return False, detail + ": latest must add up to 20"
    if any(p != (0 if n else None) for p, n in zip(past, latest)):
        return False, detail + ": a time before the produce must give 0 (None for an empty partition)"
    if any(f is not None for f in future):
        return False, detail + ": a time after the produce must give no offset"
    return True, detail


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="kafka-python %(levelname)s %(name)s: %(message)s")
    main()
