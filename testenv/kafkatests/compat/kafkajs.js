// kafkajs 2.2.4 (npm, installed by install.sh) against a Strata cluster.
//
// Usage: node kafkajs.js BOOTSTRAP TOPIC BROKERS REPLICATION_FACTOR
// kafkajs is loaded from $KAFKAJS_PREFIX/node_modules (default
// ~/.cache/strata/npm/node_modules).
//
// Creates TOPIC (3 partitions), checks the metadata, produces 10 keyed and 10
// unkeyed records, consumes them back, checks ListOffsets, consumes TOPIC
// through a consumer group (then a second consumer of the group must read
// only the records produced after the first one committed), with
// COMPAT_TRANSACTIONS set commits and aborts transactions (transactions()),
// deletes TOPIC. Prints one JSON line per capability on stdout, as
// testenv/kafkatests/compat_test.go parses: {"capability": ..., "ok": true|false, "detail": ...}.
//
// "consume" reads without a group, which kafkajs's consumer cannot do, so it
// uses kafkajs's own lower layer: the Cluster the Kafka object
// builds for its clients (a private symbol) and Broker.fetch, with explicit
// partitions and offsets. That still exercises kafkajs's Metadata and Fetch
// encoding and its record batch decoding; "group" uses kafkajs's consumer.
'use strict'

const fs = require('fs')
const path = require('path')
const os = require('os')

const prefix = process.env.KAFKAJS_PREFIX || path.join(os.homedir(), '.cache', 'strata', 'npm')
const modules = path.join(prefix, 'node_modules')
const { Kafka, logLevel, Partitioners } = require(path.join(modules, 'kafkajs'))
const murmur2 = require(path.join(modules, 'kafkajs', 'src', 'producer', 'partitioners', 'default', 'murmur2'))

const PARTITIONS = 3
const TIMEOUT_MS = 20000
const GROUP_TIMEOUT_MS = 30000

const [bootstrap, topic, brokersArg, rfArg] = process.argv.slice(2)
const brokers = parseInt(brokersArg, 10)
const rf = parseInt(rfArg, 10)

function report(capability, ok, detail) {
  process.stdout.write(JSON.stringify({ capability, ok: !!ok, detail }) + '\n')
}

// The 20 records every client produces: keys key-0..key-4 twice each.
function expectedRecords() {
  const recs = []
  for (let i = 0; i < 10; i++) recs.push({ key: `key-${i % 5}`, value: `keyed-${i}` })
  for (let i = 0; i < 10; i++) recs.push({ key: null, value: `unkeyed-${i}` })
  return recs
}

// Kafka's default partitioner for a keyed record (murmur2, positive).
const keyPartition = key => (murmur2(key) & 0x7fffffff) % PARTITIONS

async function check(capability, fn) {
  let ok, detail
  try {
    ;[ok, detail] = await fn()
  } catch (e) {
    ok = false
    detail = `${e.name}: ${e.message}`
    process.stderr.write(`${capability}: ${e.stack}\n`)
  }
  report(capability, ok, detail)
  return ok
}

// kafkajs logs to stdout by default; the JSON lines own stdout.
const logCreator = () => ({ namespace, level, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`kafkajs ${level} ${namespace}: ${message} ${JSON.stringify(extra)}\n`)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// security is how to connect, from the COMPAT_* environment compat_test.go
// sets for the secured matrix; PLAINTEXT when it is unset.
function security() {
  const env = process.env
  const protocol = env.COMPAT_SECURITY_PROTOCOL || 'PLAINTEXT'
  const opts = {}
  if (protocol === 'SSL' || protocol === 'SASL_SSL') {
    opts.ssl = { ca: [fs.readFileSync(env.COMPAT_SSL_CAFILE, 'utf8')] }
  }
  if (protocol === 'SASL_PLAINTEXT' || protocol === 'SASL_SSL') {
    opts.sasl = {
      mechanism: env.COMPAT_SASL_MECHANISM.toLowerCase(),
      username: env.COMPAT_SASL_USERNAME,
      password: env.COMPAT_SASL_PASSWORD,
    }
  }
  return opts
}

const deniedTopic = process.env.COMPAT_DENIED_TOPIC || ''

async function main() {
  const kafka = new Kafka({
    ...security(),
    clientId: 'compat-kafkajs',
    brokers: bootstrap.split(','),
    logLevel: logLevel.WARN,
    logCreator,
    requestTimeout: TIMEOUT_MS,
    retry: { retries: 5 },
  })
  const admin = kafka.admin()
  await admin.connect()
  const state = { counts: null, startMs: null }

  try {
    await check('create-topic', async () => {
      const created = await admin.createTopics({
        topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: rf }],
        timeout: TIMEOUT_MS,
        waitForLeaders: true,
      })
      if (!created) return [false, `createTopics returned false: ${topic} already exists`]
      return [true, `${topic}, ${PARTITIONS} partitions, RF ${rf}; leaders found`]
    })

    await check('metadata', async () => {
      const cluster = await admin.describeCluster()
      const ids = cluster.brokers.map(b => b.nodeId).sort((a, b) => a - b)
      if (new Set(ids).size !== brokers) return [false, `brokers ${ids}, want ${brokers}`]
      if (!ids.includes(cluster.controller)) return [false, `controller ${cluster.controller} is not a listed broker`]
      const topics = await admin.listTopics()
      if (!topics.includes(topic)) return [false, `listTopics does not list ${topic}: ${topics}`]
      const md = await admin.fetchTopicMetadata({ topics: [topic] })
      const parts = md.topics[0].partitions
      const leaders = parts.map(p => p.leader).sort()
      if (parts.length !== PARTITIONS || !leaders.every(l => ids.includes(l))) {
        return [false, `${topic} partitions ${JSON.stringify(parts)}`]
      }
      return [true, `brokers [${ids}], controller ${cluster.controller}; ${topic} has ${parts.length} partitions, leaders [${leaders}]`]
    })

    await check('produce', async () => {
      // Default settings: the DefaultPartitioner (murmur2 for keys), acks=-1.
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
      await producer.connect()
      const counts = new Array(PARTITIONS).fill(0)
      const bad = []
      state.startMs = Date.now() - 1000
      try {
        for (const rec of expectedRecords()) {
          const [md] = await producer.send({ topic, messages: [rec] })
          if (md.errorCode !== 0) return [false, `produce ${rec.value}: error code ${md.errorCode}`]
          counts[md.partition]++
          if (rec.key !== null && md.partition !== keyPartition(rec.key)) {
            bad.push(`${rec.key} -> ${md.partition}, murmur2 says ${keyPartition(rec.key)}`)
          }
        }
      } finally {
        await producer.disconnect()
      }
      state.counts = counts
      if (bad.length) return [false, `keyed records off their murmur2 partition: ${bad}`]
      return [true, `20 records acked (acks=all default), per partition [${counts}]; keys on murmur2 partitions`]
    })

    await check('consume', async () => {
      const got = await fetchAll(kafka)
      return compare(got, state)
    })

    await check('list-offsets', async () => {
      const offsets = await admin.fetchTopicOffsets(topic)
      const byPartition = p => offsets.find(o => o.partition === p)
      const earliest = [0, 1, 2].map(p => parseInt(byPartition(p).low, 10))
      const latest = [0, 1, 2].map(p => parseInt(byPartition(p).high, 10))
      const atTime = async ts => {
        const res = await admin.fetchTopicOffsetsByTimestamp(topic, ts)
        return [0, 1, 2].map(p => parseInt(res.find(o => o.partition === p).offset, 10))
      }
      const past = await atTime(state.startMs || 0)
      const future = await atTime(Date.now() + 3600 * 1000)
      return checkOffsets(earliest, latest, past, future, state.counts)
    })

    await check('group', async () => {
      const offsets = await admin.fetchTopicOffsets(topic)
      const end = [0, 1, 2].map(p => parseInt(offsets.find(o => o.partition === p).high, 10))
      const groupId = `${topic}-group`
      const first = await groupRead(kafka, groupId, got => got.length >= end.reduce((a, b) => a + b, 0))
      // What the group coordinator holds (OffsetFetch through the admin client).
      const fetched = await admin.fetchOffsets({ groupId, topics: [topic] })
      const parts = fetched.find(t => t.topic === topic)?.partitions || []
      const committed = [0, 1, 2].map(p => {
        const o = parts.find(x => x.partition === p)
        return o ? parseInt(o.offset, 10) : -1
      })
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
      await producer.connect()
      try {
        await producer.send({ topic, messages: groupRecords() })
      } finally {
        await producer.disconnect()
      }
      const second = await groupRead(kafka, groupId, got => got.length >= groupRecords().length)
      return checkGroup(end, first, committed, second)
    })

    if (deniedTopic) {
      await check('denied', async () => {
        const producer = kafka.producer({ retry: { retries: 2 } })
        await producer.connect()
        const start = Date.now()
        try {
          await producer.send({ topic: deniedTopic, messages: [{ value: 'denied' }] })
          return [false, `produce to ${deniedTopic}, which the user may not write, succeeded`]
        } catch (e) {
          // A retrier's KafkaJSNonRetriableError carries the broker's
          // KafkaJSProtocolError as its cause.
          for (let err = e; err; err = err.cause || err.originalError) {
            if (err.type === 'TOPIC_AUTHORIZATION_FAILED') {
              return [true, `refused in ${Date.now() - start} ms: ${e.name}: ${e.message} (${err.type})`]
            }
            if (err === err.cause) break
          }
          return [false, `produce to ${deniedTopic}: ${e.name} ${e.type || ''} ${e.message}, want TOPIC_AUTHORIZATION_FAILED`]
        } finally {
          await producer.disconnect()
        }
      })
    }

    if (process.env.COMPAT_TRANSACTIONS) {
      await check('transactions', () => transactions(kafka, admin))
    }

    await check('delete-topic', async () => {
      await admin.deleteTopics({ topics: [topic], timeout: TIMEOUT_MS })
      const deadline = Date.now() + TIMEOUT_MS
      while ((await admin.listTopics()).includes(topic)) {
        if (Date.now() > deadline) return [false, `${topic} still listed after deleteTopics`]
        await sleep(200)
      }
      return [true, `${topic} gone from metadata`]
    })
  } finally {
    await admin.disconnect()
  }
}

// fetchAll reads every partition of the topic from offset 0 up to its high
// watermark with Fetch requests to each partition's leader.
async function fetchAll(kafka) {
  const createCluster = kafka[Object.getOwnPropertySymbols(kafka).find(s => s.description === 'private:Kafka:createCluster')]
  if (!createCluster) throw new Error("kafkajs's private createCluster is gone: update the low-level consume")
  const cluster = createCluster({ allowAutoTopicCreation: false })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    await cluster.refreshMetadata()
    const leaders = cluster.findLeaderForPartitions(topic, [0, 1, 2])
    const got = []
    const next = [0, 0, 0] // next offset per partition
    const done = new Set()
    const deadline = Date.now() + TIMEOUT_MS
    while (done.size < PARTITIONS) {
      if (Date.now() > deadline) throw new Error(`fetch timed out with ${got.length} records read, offsets [${next}]`)
      for (const [nodeId, partitions] of Object.entries(leaders)) {
        const wanted = partitions.filter(p => !done.has(p))
        if (!wanted.length) continue
        const broker = await cluster.findBroker({ nodeId })
        const res = await broker.fetch({
          replicaId: -1,
          isolationLevel: 1, // READ_COMMITTED, kafkajs's consumer default
          maxWaitTime: 100,
          topics: [{ topic, partitions: wanted.map(p => ({ partition: p, fetchOffset: String(next[p]), maxBytes: 1 << 20 })) }],
        })
        for (const t of res.responses) {
          for (const p of t.partitions) {
            if (p.errorCode !== 0) throw new Error(`fetch partition ${p.partition}: error code ${p.errorCode}`)
            for (const m of p.messages) {
              const offset = parseInt(m.offset, 10)
              if (offset < next[p.partition]) continue // a batch may start before the fetch offset
              got.push({ partition: p.partition, offset, key: m.key === null ? null : m.key.toString(), value: m.value.toString() })
              next[p.partition] = offset + 1
            }
            if (next[p.partition] >= parseInt(p.highWatermark, 10)) done.add(p.partition)
          }
        }
      }
    }
    return got
  } finally {
    await cluster.disconnect()
  }
}

// The transactions capability runs on its own topic, TOPIC-txn, also its
// transactional id: TXN_COUNT transactions of txnRecords(n), number
// TXN_ABORTED aborted, then a group consumer of each isolation level reads
// it from the beginning.
const TXN_COUNT = 3
const TXN_ABORTED = 2

// Keys key-0..key-4 (all three partitions), values txnN-0..txnN-4.
function txnRecords(n) {
  return [0, 1, 2, 3, 4].map(i => ({ key: `key-${i}`, value: `txn${n}-${i}` }))
}

// txnWant is what a consumer must read of each partition, in offset order.
function txnWant(withAborted) {
  const want = [...Array(PARTITIONS)].map(() => [])
  for (let n = 1; n <= TXN_COUNT; n++) {
    if (n === TXN_ABORTED && !withAborted) continue
    for (const r of txnRecords(n)) want[keyPartition(r.key)].push(r.value)
  }
  return want
}

async function transactions(kafka, admin) {
  const txnTopic = `${topic}-txn`
  const created = await admin.createTopics({
    topics: [{ topic: txnTopic, numPartitions: PARTITIONS, replicationFactor: rf }],
    timeout: TIMEOUT_MS,
    waitForLeaders: true,
  })
  if (!created) return [false, `createTopics returned false: ${txnTopic} already exists`]
  try {
    const producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      transactionalId: txnTopic,
      idempotent: true,
      maxInFlightRequests: 1,
    })
    await producer.connect()
    try {
      for (let n = 1; n <= TXN_COUNT; n++) {
        const txn = await producer.transaction()
        try {
          await txn.send({ topic: txnTopic, messages: txnRecords(n) })
        } catch (e) {
          await txn.abort()
          throw new Error(`transaction ${n}: send: ${e.name}: ${e.message}`)
        }
        if (n === TXN_ABORTED) await txn.abort()
        else await txn.commit()
      }
    } finally {
      await producer.disconnect()
    }
    // A group consumer (kafkajs has no other) per isolation level, each in
    // its own group so that both start from the beginning.
    const read = async (readUncommitted, count) => {
      const groupId = `${txnTopic}-${readUncommitted ? 'uncommitted' : 'committed'}`
      return groupRead(kafka, groupId, got => got.length >= count, { topic: txnTopic, readUncommitted })
    }
    const committed = await read(false, txnWant(false).flat().length)
    const uncommitted = await read(true, txnWant(true).flat().length)
    for (const [isolation, got, withAborted] of [['read_committed', committed, false], ['read_uncommitted', uncommitted, true]]) {
      const want = txnWant(withAborted)
      for (let p = 0; p < PARTITIONS; p++) {
        const have = got.filter(r => r.partition === p).sort((a, b) => a.offset - b.offset).map(r => r.value)
        if (JSON.stringify(have) !== JSON.stringify(want[p])) {
          return [false, `${isolation} consumer read [${have}] of partition ${p}, want [${want[p]}] (transaction ${TXN_ABORTED} aborted)`]
        }
      }
      const bad = got.filter(r => r.partition !== keyPartition(r.key)).map(r => `${r.key} on ${r.partition}`)
      if (bad.length) return [false, `${isolation}: keyed records off their murmur2 partition: ${bad}`]
    }
    return [true, `${TXN_COUNT} transactions of 5 records, #${TXN_ABORTED} aborted: read_committed read exactly the ${committed.length} committed in order, read_uncommitted all ${uncommitted.length}`]
  } finally {
    await admin.deleteTopics({ topics: [txnTopic], timeout: TIMEOUT_MS })
  }
}

// The records produced between the two group consumers: keys key-0..key-4.
function groupRecords() {
  return [0, 1, 2, 3, 4].map(i => ({ key: `key-${i}`, value: `group-${i}` }))
}

// groupRead runs one consumer of the group (kafkajs's consumer with its
// default autocommit: offsets of processed messages are committed after each
// batch and on disconnect) from the beginning where nothing is committed,
// until done(records) holds, then disconnects (LeaveGroup). It reads TOPIC
// read_committed (kafkajs's default) unless told otherwise.
async function groupRead(kafka, groupId, done, { topic: readTopic = topic, readUncommitted = false } = {}) {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, readUncommitted })
  const got = []
  let crashed = null
  consumer.on(consumer.events.CRASH, e => { crashed = e.payload.error })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [readTopic], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({
          partition,
          offset: parseInt(message.offset, 10),
          key: message.key === null ? null : message.key.toString(),
          value: message.value.toString(),
        })
      },
    })
    const deadline = Date.now() + GROUP_TIMEOUT_MS
    while (!done(got)) {
      if (crashed) throw new Error(`group ${groupId}: consumer crashed after ${got.length} records: ${crashed.name}: ${crashed.message}`)
      if (Date.now() > deadline) throw new Error(`group ${groupId}: read ${got.length} records before the deadline: ${JSON.stringify(got)}`)
      await sleep(50)
    }
  } finally {
    await consumer.disconnect()
  }
  return got
}

// checkGroup: first must hold every offset below end of every partition; the
// committed offsets must be end; second exactly groupRecords(), none of the
// records read before.
function checkGroup(end, first, committed, second) {
  for (let p = 0; p < PARTITIONS; p++) {
    const have = [...new Set(first.filter(r => r.partition === p).map(r => r.offset))].sort((a, b) => a - b)
    const want = Array.from({ length: end[p] }, (_, i) => i)
    if (JSON.stringify(have) !== JSON.stringify(want)) {
      return [false, `first group consumer read offsets [${have}] of partition ${p}, want 0..${end[p] - 1}`]
    }
  }
  if (JSON.stringify(committed) !== JSON.stringify(end)) {
    return [false, `committed offsets [${committed}] after the first group consumer read everything, want the end offsets [${end}]`]
  }
  const have = second.map(r => r.value).sort()
  const want = groupRecords().map(r => r.value).sort()
  const old = second.filter(r => r.offset < end[r.partition]).map(r => `${r.partition}@${r.offset}`)
  if (JSON.stringify(have) !== JSON.stringify(want) || old.length) {
    return [false, `second group consumer read [${have}] (committed records re-read: [${old}]), want exactly [${want}]`]
  }
  const bad = second.filter(r => r.partition !== keyPartition(r.key)).map(r => `${r.key} on ${r.partition}`)
  if (bad.length) return [false, `keyed records off their murmur2 partition: ${bad}`]
  return [true, `first consumer read all ${first.length}, committed [${committed}]; the second read exactly the ${second.length} new ones`]
}

// compare checks the records read against expectedRecords.
function compare(got, state) {
  const fmt = r => `${r.key}=${r.value}`
  const want = expectedRecords().map(fmt).sort()
  const have = got.map(fmt).sort()
  if (JSON.stringify(have) !== JSON.stringify(want)) return [false, `read ${got.length} records, want 20: ${have}`]
  const bad = got.filter(r => r.key !== null && r.partition !== keyPartition(r.key)).map(r => `${r.key} on ${r.partition}`)
  if (bad.length) return [false, `keyed records off their murmur2 partition: ${bad}`]
  const firsts = [0, 1, 2].map(p => Math.min(...got.filter(r => r.partition === p).map(r => r.offset)))
  const counts = [0, 1, 2].map(p => got.filter(r => r.partition === p).length)
  if (firsts.some((o, p) => counts[p] > 0 && o !== 0)) return [false, `first offsets [${firsts}], want 0`]
  state.counts = counts
  return [true, `read all 20 back from offset 0 (Fetch without a group), per partition [${counts}]`]
}

// checkOffsets: earliest must be 0, latest the partition's record count; a
// time before the produce finds offset 0 of a non-empty partition, and a
// time after it nothing, which kafkajs's fetchTopicOffsetsByTimestamp turns
// into the high watermark.
function checkOffsets(earliest, latest, past, future, counts) {
  const detail = `earliest [${earliest}], latest [${latest}], by time (before) [${past}], (after) [${future}]`
  if (earliest.some(o => o !== 0)) return [false, `${detail}: earliest must be 0`]
  if (counts && JSON.stringify(latest) !== JSON.stringify(counts)) return [false, `${detail}: latest must be [${counts}]`]
  if (latest.reduce((a, b) => a + b, 0) !== 20) return [false, `${detail}: latest must add up to 20`]
  if (past.some((o, p) => o !== (latest[p] ? 0 : latest[p]))) {
    return [false, `${detail}: a time before the produce must give 0 (the high watermark for an empty partition)`]
  }
  if (future.some((o, p) => o !== latest[p])) return [false, `${detail}: a time after the produce must give no offset`]
  return [true, detail]
}

main().catch(e => {
  process.stderr.write(`kafkajs: ${e.stack}\n`)
  process.exit(1)
})
