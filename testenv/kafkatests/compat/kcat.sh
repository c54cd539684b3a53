#!/usr/bin/env bash
# kcat 1.7.1 (librdkafka 2.0.2, Debian's kcat) against a Strata cluster.
#
# Usage: kcat.sh BOOTSTRAP TOPIC BROKERS REPLICATION_FACTOR
#
# kcat cannot create or delete topics: TOPIC must exist with 3 partitions
# (compat_test.go creates and deletes it with kadm), and create-topic and
# delete-topic are reported as not applicable. The rest: metadata (kcat -L),
# produce 10 keyed (-P -K:) and 10 unkeyed records, consume them back from the
# beginning of every partition (-C -e -o beginning, no group), offsets by
# time (-Q), and a consumer group: a balanced consumer (-G) reads everything
# and commits, then a second one of the group must read only the records
# produced after that, and with COMPAT_TRANSACTIONS set transactions
# (txn_check) on TOPIC-txn, which compat_test.go also creates and deletes.
# Prints one JSON line per capability on stdout, as
# testenv/kafkatests/compat_test.go parses: {"capability": ..., "ok": true|false, "detail": ...}.
#
# librdkafka's default partitioner is consistent_random (CRC32 of the key);
# the produce uses its Java-compatible murmur2_random, so keyed records must
# land where Kafka's own clients put them.
set -uo pipefail

bootstrap=$1 topic=$2 brokers=$3
partitions=3
timeout_ms=20000
# The partition Kafka's murmur2 partitioner picks for key-0..key-4 among 3
# partitions: (murmur2(key) & 0x7fffffff) % 3, as computed by kafka-python,
# kafkajs and compat_test.go (TestKafkaClientMatrix checks this table).
key_partitions=(1 0 2 2 0) # KEY_PARTITIONS

kcat=(kcat -b "$bootstrap" -X "socket.timeout.ms=$timeout_ms")
# The secured matrix says how to connect in COMPAT_* (compat_test.go).
protocol=${COMPAT_SECURITY_PROTOCOL:-PLAINTEXT}
kcat+=(-X "security.protocol=$protocol")
case $protocol in SSL | SASL_SSL) kcat+=(-X "ssl.ca.location=$COMPAT_SSL_CAFILE") ;; esac
case $protocol in SASL_PLAINTEXT | SASL_SSL)
	kcat+=(-X "sasl.mechanisms=$COMPAT_SASL_MECHANISM" -X "sasl.username=$COMPAT_SASL_USERNAME" -X "sasl.password=$COMPAT_SASL_PASSWORD")
	;;
esac

json_escape() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	printf '%s' "$s"
}

# report CAPABILITY ok|fail|na DETAIL
report() {
	local ok=false na=""
	case $2 in
	ok) ok=true ;;
	na) na=',"na":true' ;;
	esac
	printf '{"capability":"%s","ok":%s%s,"detail":"%s"}\n' "$1" "$ok" "$na" "$(json_escape "$3")"
}

errfile=$(mktemp)
trap 'rm -f "$errfile"' EXIT

# run CMD...: runs a kcat command with its stderr in $errfile, copied to ours.
run() {
	"$@" 2>"$errfile"
	local rc=$?
	cat "$errfile" >&2
	return $rc
}

report create-topic na "kcat cannot create topics (the test creates $topic with kadm)"

# metadata: every broker listed, the topic with 3 partitions, each with a leader.
if md=$(run "${kcat[@]}" -L); then
	nbrokers=$(grep -cE '^  broker [0-9]+ at ' <<<"$md")
	controller=$(grep -cE '^  broker [0-9]+ at .*\(controller\)' <<<"$md")
	tmd=$(awk -v t="  topic \"$topic\" " 'index($0, t) == 1 { on = 1; print; next } /^  topic / { on = 0 } on' <<<"$md")
	nparts=$(grep -cE '^    partition [0-9]+, leader [0-9]+,' <<<"$tmd")
	if [ "$nbrokers" -ne "$brokers" ]; then
		report metadata fail "kcat -L lists $nbrokers brokers, want $brokers: $md"
	elif [ "$controller" -ne 1 ]; then
		report metadata fail "kcat -L marks $controller brokers as controller, want 1: $md"
	elif [ "$nparts" -ne "$partitions" ]; then
		report metadata fail "kcat -L shows $nparts partitions with a leader for $topic, want $partitions: $tmd"
	else
		report metadata ok "$nbrokers brokers (one controller); $topic with $nparts partitions, each with a leader"
	fi
else
	report metadata fail "kcat -L failed: $(tail -3 "$errfile")"
fi

# produce: keyed records key-(i%5):keyed-i, then unkeyed ones, acks=all (librdkafka's default).
start_ms=$(($(date +%s%3N) - 1000))
keyed=$(for i in $(seq 0 9); do echo "key-$((i % 5)):keyed-$i"; done)
unkeyed=$(for i in $(seq 0 9); do echo "unkeyed-$i"; done)
produce=("${kcat[@]}" -P -t "$topic" -X topic.partitioner=murmur2_random -X "message.timeout.ms=$timeout_ms")
if ! run "${produce[@]}" -K: <<<"$keyed"; then
	report produce fail "kcat -P -K: failed: $(tail -3 "$errfile")"
elif grep -qiE 'error|failed' "$errfile"; then
	report produce fail "kcat -P -K: reported: $(tail -3 "$errfile")"
elif ! run "${produce[@]}" <<<"$unkeyed"; then
	report produce fail "kcat -P (unkeyed) failed: $(tail -3 "$errfile")"
elif grep -qiE 'error|failed' "$errfile"; then
	report produce fail "kcat -P (unkeyed) reported: $(tail -3 "$errfile")"
else
	report produce ok "10 keyed and 10 unkeyed records delivered (acks=all, partitioner murmur2_random)"
fi

# consume: every partition from the beginning to its end, no group. librdkafka
# reads read_committed by default, up to the last stable offset.
counts=()
if got=$(run timeout 60 "${kcat[@]}" -C -t "$topic" -o beginning -e -q -Z -f '%p\t%o\t%k\t%s\n'); then
	want=$( (
		for i in $(seq 0 9); do printf 'key-%d\tkeyed-%d\n' $((i % 5)) "$i"; done
		for i in $(seq 0 9); do printf 'NULL\tunkeyed-%d\n' "$i"; done
	) | sort)
	have=$(cut -f3,4 <<<"$got" | sort)
	misplaced=$(awk -F'\t' -v kp="${key_partitions[*]}" '
		BEGIN { n = split(kp, a, " ") }
		$3 ~ /^key-/ { k = substr($3, 5) + 1; if ($1 != a[k]) printf "%s on %s (murmur2: %s) ", $3, $1, a[k] }' <<<"$got")
	firsts=$(awk -F'\t' '!($1 in m) || $2 < m[$1] { m[$1] = $2 } END { for (p in m) if (m[p] != 0) printf "partition %s starts at %s ", p, m[p] }' <<<"$got")
	for p in $(seq 0 $((partitions - 1))); do
		counts+=("$(awk -F'\t' -v p="$p" '$1 == p' <<<"$got" | wc -l)")
	done
	if [ "$have" != "$want" ]; then
		report consume fail "read $(grep -c . <<<"$got") records, want 20: $got"
	elif [ -n "$misplaced" ]; then
		report consume fail "keyed records off their murmur2 partition: $misplaced"
	elif [ -n "$firsts" ]; then
		report consume fail "$firsts, want 0"
	else
		report consume ok "read all 20 back from offset 0 (read_committed, no group), per partition [${counts[*]}]"
	fi
else
	report consume fail "kcat -C failed: $(tail -3 "$errfile")"
fi

# list-offsets: -Q asks ListOffsets for a timestamp per partition; -2 is the
# earliest offset, -1 the latest.
query() { # query TIMESTAMP: prints the offsets of partitions 0..2, one line
	local args=() p out
	for p in $(seq 0 $((partitions - 1))); do args+=(-t "$topic:$p:$1"); done
	out=$(run "${kcat[@]}" -Q "${args[@]}") || return 1
	for p in $(seq 0 $((partitions - 1))); do
		awk -v t="$topic" -v p="[$p]" '$1 == t && $2 == p && $3 == "offset" { print $4 }' <<<"$out"
	done | paste -sd' '
}
if earliest=$(query -2) && latest=$(query -1) && past=$(query "$start_ms") && future=$(query $(($(date +%s%3N) + 3600000))); then
	detail="earliest [$earliest], latest [$latest], by time (before) [$past], (after) [$future]"
	read -ra e <<<"$earliest"
	read -ra l <<<"$latest"
	read -ra b <<<"$past"
	read -ra f <<<"$future"
	problem=""
	sum=0
	for p in $(seq 0 $((partitions - 1))); do
		[ "${e[p]:-x}" = 0 ] || problem="earliest must be 0"
		[ ${#counts[@]} -eq 0 ] || [ "${l[p]:-x}" = "${counts[p]}" ] || problem="latest must be [${counts[*]}]"
		sum=$((sum + ${l[p]:-0}))
		if [ "${l[p]:-0}" != 0 ]; then want_past=0; else want_past=-1; fi
		[ "${b[p]:-x}" = "$want_past" ] || problem="a time before the produce must give 0 (-1 for an empty partition)"
		[ "${f[p]:-x}" = -1 ] || problem="a time after the produce must give -1"
	done
	[ "$sum" -eq 20 ] || problem="latest must add up to 20"
	if [ -n "$problem" ]; then
		report list-offsets fail "$detail: $problem"
	else
		report list-offsets ok "$detail"
	fi
else
	report list-offsets fail "kcat -Q failed: $(tail -3 "$errfile")"
fi

# group: a balanced consumer (-G, librdkafka's KafkaConsumer) reads every
# partition from the beginning (-o beginning) to its end (-e) and exits; its
# offsets are auto-committed (enable.auto.commit, and on close). Then 5 keyed
# records group-0..4 are produced, and a second balanced consumer of the same
# group, without -o (so the committed offsets, auto.offset.reset=earliest
# only where there are none), must read exactly those. kcat cannot show a
# group's committed offsets; the second run is the check.
group=$topic-group
gconsume=("${kcat[@]}" -G "$group" -X enable.partition.eof=true -X auto.offset.reset=earliest -e -q -Z -f '%p\t%o\t%k\t%s\n')
# failed_run WHAT RC OUTPUT: the detail of a failed kcat run.
failed_run() {
	local why="exit $2"
	[ "$2" = 124 ] && why="timed out after 30s"
	printf '%s failed (%s; read [%s]): %s' "$1" "$why" "$(cut -f4 <<<"$3" | grep . | paste -sd' ')" "$(tail -3 "$errfile")"
}
group_check() {
	local end first second rc p have want old problem="" extra
	end=$(query -1) || { report group fail "kcat -Q (end offsets) failed: $(tail -3 "$errfile")"; return; }
	first=$(run timeout 30 "${gconsume[@]}" -o beginning "$topic")
	rc=$?
	[ $rc = 0 ] || { report group fail "$(failed_run "first kcat -G $group" $rc "$first")"; return; }
	read -ra e <<<"$end"
	for p in $(seq 0 $((partitions - 1))); do
		have=$(awk -F'\t' -v p="$p" '$1 == p { print $2 }' <<<"$first" | sort -nu | paste -sd' ')
		want=$(if [ "${e[p]:-0}" -gt 0 ]; then seq 0 $((e[p] - 1)); fi | paste -sd' ')
		[ "$have" = "$want" ] || problem="first kcat -G read offsets [$have] of partition $p, want 0..$((${e[p]:-0} - 1)) (end offsets [$end])"
	done
	[ -z "$problem" ] || { report group fail "$problem"; return; }
	extra=$(for i in $(seq 0 4); do echo "key-$i:group-$i"; done)
	if ! run "${produce[@]}" -K: <<<"$extra" || grep -qiE 'error|failed' "$errfile"; then
		report group fail "kcat -P of the group records failed: $(tail -3 "$errfile")"
		return
	fi
	second=$(run timeout 30 "${gconsume[@]}" "$topic")
	rc=$?
	[ $rc = 0 ] || { report group fail "$(failed_run "second kcat -G $group" $rc "$second")"; return; }
	have=$(cut -f4 <<<"$second" | grep . | sort | paste -sd' ')
	want=$(for i in $(seq 0 4); do echo "group-$i"; done | paste -sd' ')
	old=$(awk -F'\t' -v ends="$end" 'BEGIN { split(ends, e, " ") } $2 < e[$1 + 1] { printf "%s@%s ", $1, $2 }' <<<"$second")
	if [ "$have" != "$want" ] || [ -n "$old" ]; then
		report group fail "second kcat -G $group read [$have] (committed records re-read: [$old]), want exactly [$want]"
	else
		report group ok "first kcat -G read all $(grep -c . <<<"$first") (end offsets [$end]), auto-committed on close; the second read exactly the 5 new ones"
	fi
}
group_check

# denied: a produce to a topic the user may not write must fail with
# librdkafka's "Topic authorization failed", not hang.
denied_check() {
	local start out rc
	start=$(date +%s%N)
	out=$(run timeout 40 "${kcat[@]}" -P -t "$COMPAT_DENIED_TOPIC" -X "message.timeout.ms=$timeout_ms" <<<"denied")
	rc=$?
	if grep -qi 'authorization failed' "$errfile"; then
		report denied ok "refused in $((($(date +%s%N) - start) / 1000000)) ms: $(grep -i -m1 'authorization failed' "$errfile")"
	elif [ $rc = 124 ]; then
		report denied fail "kcat -P to $COMPAT_DENIED_TOPIC hung for 40 s instead of being refused"
	else
		report denied fail "kcat -P to $COMPAT_DENIED_TOPIC exited $rc without an authorization error: $(tail -3 "$errfile")"
	fi
}
[ -z "${COMPAT_DENIED_TOPIC:-}" ] || denied_check

# transactions: kcat -P with transactional.id (kcat 1.6 and later) produces
# its whole input in one transaction, committed at the end of the input and
# aborted when a termination signal comes first. compat_test.go creates
# TOPIC-txn, also the transactional id. Transaction 1 commits; transaction 2
# is fed through a FIFO, and once its records are in the log (a
# read_uncommitted read sees them) kcat gets SIGINT and then the end of its
# input, so it aborts; transaction 3 commits. Then a read_committed read must
# give exactly the records of 1 and 3 in order per partition, and a
# read_uncommitted one those of 2 as well.
txn_topic=$topic-txn
txnproduce=("${kcat[@]}" -P -t "$txn_topic" -K: -X topic.partitioner=murmur2_random
	-X "transactional.id=$txn_topic" -X "message.timeout.ms=$timeout_ms")
txn_records() { # txn_records N: transaction N's records, keys key-0..key-4
	local i
	for i in $(seq 0 4); do echo "key-$i:txn$1-$i"; done
}
txn_read() { # txn_read ISOLATION_LEVEL: the whole topic as partition, offset, key, value
	run timeout 60 "${kcat[@]}" -C -t "$txn_topic" -o beginning -e -q -Z -X "isolation.level=$1" -f '%p\t%o\t%k\t%s\n'
}
txn_want() { # txn_want TRANSACTION...: the values of each partition in order, a line each
	local p n i
	for p in $(seq 0 $((partitions - 1))); do
		for n in "$@"; do
			for i in $(seq 0 4); do
				[ "${key_partitions[i]}" != "$p" ] || echo "txn$n-$i"
			done
		done | paste -sd' '
	done
}
txn_have() { # txn_have RECORDS: what txn_want gives, from txn_read's output
	local p
	for p in $(seq 0 $((partitions - 1))); do
		awk -F'\t' -v p="$p" '$1 == p { print $2 "\t" $4 }' <<<"$1" | sort -n | cut -f2 | paste -sd' '
	done
}
txn_commit() { # txn_commit N
	if ! run "${txnproduce[@]}" <<<"$(txn_records "$1")"; then
		echo "transaction $1: kcat -P failed: $(tail -3 "$errfile")"
	elif ! grep -q 'Transaction successfully committed' "$errfile"; then
		echo "transaction $1: kcat -P did not commit: $(tail -3 "$errfile")"
	fi
}
txn_abort() { # txn_abort N: prints what went wrong, if anything
	local dir pid w deadline seen=0 problem="" want
	dir=$(mktemp -d)
	mkfifo "$dir/in"
	"${txnproduce[@]}" <"$dir/in" 2>"$dir/err" &
	pid=$!
	exec {w}>"$dir/in"
	# kcat reads its input 128 bytes at a time (fread) and looks for the next
	# line only after each read, so records on a pipe that stays open wait
	# for more input: empty lines, which it skips, push them through.
	{
		txn_records "$1"
		printf '\n%.0s' $(seq 1024)
	} >&"$w"
	want=$(txn_want 1 "$1" | wc -w)
	deadline=$((SECONDS + 20))
	while [ "$seen" -lt "$want" ] && [ $SECONDS -lt $deadline ]; do
		seen=$(txn_read read_uncommitted | grep -c .)
		[ "$seen" -ge "$want" ] || sleep 0.2
	done
	if [ "$seen" -lt "$want" ]; then
		problem="transaction $1: read_uncommitted saw $seen records, want $want, before the abort"
	fi
	kill -INT "$pid"
	exec {w}>&-
	wait "$pid"
	cat "$dir/err" >&2
	if [ -z "$problem" ] && ! grep -q 'Aborting transaction' "$dir/err"; then
		problem="transaction $1: kcat -P did not abort on SIGINT: $(tail -3 "$dir/err")"
	elif [ -z "$problem" ] && grep -q 'ERROR' "$dir/err"; then
		problem="transaction $1: kcat -P: $(grep -m1 ERROR "$dir/err")"
	fi
	rm -rf "$dir"
	[ -z "$problem" ] || echo "$problem"
}
txn_check() {
	local problem committed uncommitted
	problem=$(txn_commit 1)
	[ -n "$problem" ] || problem=$(txn_abort 2)
	[ -n "$problem" ] || problem=$(txn_commit 3)
	[ -z "$problem" ] || { report transactions fail "$problem"; return; }
	committed=$(txn_read read_committed) || { report transactions fail "kcat -C read_committed failed: $(tail -3 "$errfile")"; return; }
	uncommitted=$(txn_read read_uncommitted) || { report transactions fail "kcat -C read_uncommitted failed: $(tail -3 "$errfile")"; return; }
	if [ "$(txn_have "$committed")" != "$(txn_want 1 3)" ]; then
		report transactions fail "read_committed read [$(txn_have "$committed" | paste -sd'|')] per partition, want [$(txn_want 1 3 | paste -sd'|')] (transaction 2 aborted)"
	elif [ "$(txn_have "$uncommitted")" != "$(txn_want 1 2 3)" ]; then
		report transactions fail "read_uncommitted read [$(txn_have "$uncommitted" | paste -sd'|')] per partition, want [$(txn_want 1 2 3 | paste -sd'|')]"
	else
		report transactions ok "3 transactions of 5 records (kcat -P -X transactional.id), #2 aborted by SIGINT: read_committed read exactly the $(grep -c . <<<"$committed") committed in order, read_uncommitted all $(grep -c . <<<"$uncommitted")"
	fi
}
[ -z "${COMPAT_TRANSACTIONS:-}" ] || txn_check

report delete-topic na "kcat cannot delete topics (the test deletes $topic with kadm)"
