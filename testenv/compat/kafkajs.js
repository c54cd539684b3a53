// kafkajs 2.2.4 (npm, installed by install.sh) against a Strata cluster.
//
// Usage: node kafkajs.js BOOTSTRAP TOPIC BROKERS REPLICATION_FACTOR
// kafkajs is loaded from $KAFKAJS_PREFIX/node_modules (default
// ~/.cache/strata/npm/node_modules).
//
// Creates TOPIC (3 partitions), checks the metadata, produces 10 keyed and 10
// unkeyed records, consumes them back, checks ListOffsets, deletes TOPIC. Prints
// one JSON line per capability on stdout, as testenv/compat_test.go parses:
// {"capability": ..., "ok": true|false, "detail": ...}.
//
// kafkajs's consumer needs a consumer group, which Strata does not serve yet,
// so "consume" uses kafkajs's own lower layer: the Cluster the Kafka object
// builds for its clients (a private symbol) and Broker.fetch, with explicit
// partitions and offsets. That still exercises kafkajs's Metadata and Fetch
// encoding and its record batch decoding, but not its group protocol.
'use strict'

const path = require('path')
const os = require('os')

const prefix = process.env.KAFKAJS_PREFIX || path.join(os.homedir(), '.cache', 'strata', 'npm')
const modules = path.join(prefix, 'node_modules')
const { Kafka, logLevel, Partitioners } = require(path.join(modules, 'kafkajs'))
const murmur2 = require(path.join(modules, 'kafkajs', 'src', 'producer', 'partitioners', 'default', 'murmur2'))

const PARTITIONS = 3
const TIMEOUT_MS = 20000

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

async function main() {
  const kafka = new Kafka({
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
