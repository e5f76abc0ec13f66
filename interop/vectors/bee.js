// Golden vectors for hyperlobby's Hyperbee: runs the pinned JS hyperbee 2.27.3 on scripted
// operations (puts, dels, batches, subs; utf-8 and binary keys; some large values), dumps every
// block as hex and the answers to get/range/peek/diff/history queries at several versions.
// Output: interop/vectors/bee.json (regenerate: node vectors/bee.js > vectors/bee.json).
//
// Second mode, `node vectors/bee.js read < input.json`: input {scenarios: [{blocks, text,
// keyEncoding, valueEncoding, queries}]} written by Python; JS appends those blocks to a fresh
// core and prints the answers to the queries ({answers: [[...], ...]}), so Python can check
// that JS reads Python-written trees the same way.
'use strict'

const os = require('os')
const fs = require('fs')
const path = require('path')
const Hypercore = require('hypercore')
const Hyperbee = require('hyperbee')
const b4a = require('b4a')
const messages = require('hyperbee/lib/messages')

const hex = (b) => (b === null || b === undefined ? null : b4a.toString(b, 'hex'))

// Deterministic PRNG (mulberry32) so the vectors are reproducible.
function rng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n) => Math.floor(next() * n)
  const pick = (arr) => arr[int(arr.length)]
  return { next, int, pick }
}

// --- key/value helpers -------------------------------------------------------------------------
// In "text" scenarios keys/values are strings (utf-8 encoding); otherwise they are hex strings
// of bytes (binary encoding). Answers always report raw bytes as hex.

function toApp(text, s) {
  if (s === null || s === undefined) return s
  return text ? s : b4a.from(s, 'hex')
}

function rawHex(v) {
  if (v === null || v === undefined) return null
  return typeof v === 'string' ? hex(b4a.from(v)) : hex(v)
}

function entry(e) {
  return e ? [e.seq, rawHex(e.key), rawHex(e.value)] : null
}

function viewOf(db, sub) {
  let v = db
  for (const name of sub || []) v = v.sub(name)
  return v
}

function rangeOpts(text, q) {
  const o = {}
  for (const k of ['gt', 'gte', 'lt', 'lte']) if (q[k] !== undefined) o[k] = toApp(text, q[k])
  if (q.reverse) o.reverse = true
  if (q.limit !== undefined) o.limit = q.limit
  return o
}

async function collect(stream) {
  const out = []
  for await (const x of stream) out.push(x)
  return out
}

async function answer(db, text, q) {
  const snap = db.checkout(q.version)
  try {
    const view = viewOf(snap, q.sub)
    if (q.kind === 'get') return entry(await view.get(toApp(text, q.key)))
    if (q.kind === 'range') {
      return (await collect(view.createReadStream(rangeOpts(text, q)))).map((e) => e.seq)
    }
    if (q.kind === 'peek') return entry(await view.peek(rangeOpts(text, q)))
    if (q.kind === 'diff') {
      const other = viewOf(db.checkout(q.other), q.sub)
      const res = await collect(view.createDiffStream(other, rangeOpts(text, q)))
      await other.close()
      return res.map((d) => [d.left ? d.left.seq : null, d.right ? d.right.seq : null])
    }
    if (q.kind === 'history') {
      const o = {}
      for (const k of ['gt', 'gte', 'lt', 'lte', 'limit']) if (q[k] !== undefined) o[k] = q[k]
      if (q.reverse) o.reverse = true
      const res = await collect(view.createHistoryStream(o))
      return res.map((e) => [e.type, e.seq])
    }
    throw new Error('unknown query ' + q.kind)
  } finally {
    await snap.close()
  }
}

// --- operation scripts -------------------------------------------------------------------------

async function applyOp(db, text, op) {
  if (op.op === 'batch') {
    const b = db.batch()
    for (const o of op.ops) {
      if (o.op === 'put') await b.put(toApp(text, o.key), toApp(text, o.value))
      else await b.del(toApp(text, o.key))
    }
    await b.flush()
    return
  }
  const view = viewOf(db, op.sub)
  if (op.op === 'put') await view.put(toApp(text, op.key), toApp(text, op.value))
  else await view.del(toApp(text, op.key))
}

function randomBytesHex(r, n, alphabet) {
  let s = ''
  for (let i = 0; i < n; i++) s += alphabet[r.int(alphabet.length)]
  return s
}

const BIN_ALPHA = ['00', '01', '02', '61', '62', '7f', '80', 'fe', 'ff']
const TEXT_ALPHA = ['a', 'b', 'c', 'd', 'z', 'A', '0', '9', '/', ' ', 'é', '✓', '😀', '~']

function makeKey(r, text) {
  const n = r.int(9) // 0..8 units, so some keys are empty or prefixes of others
  if (text) {
    let s = ''
    for (let i = 0; i < n; i++) s += r.pick(TEXT_ALPHA)
    return s
  }
  return randomBytesHex(r, n, BIN_ALPHA)
}

function makeValue(r, text, big) {
  if (big && r.int(400) === 0) {
    const n = 8000 + r.int(40000)
    return text ? 'x'.repeat(n) : randomBytesHex(r, 1, BIN_ALPHA).repeat(n)
  }
  const n = r.int(12)
  if (text) {
    let s = ''
    for (let i = 0; i < n; i++) s += r.pick(TEXT_ALPHA)
    return s
  }
  return randomBytesHex(r, n, BIN_ALPHA)
}

function randomOps(r, text, { count, pool, delRate, batchRate, maxBatch, big }) {
  const keys = []
  for (let i = 0; i < pool; i++) keys.push(makeKey(r, text) + (text ? String(i) : i.toString(16).padStart(4, '0')))
  // also plain keys with no suffix, so empty keys and short prefixes occur
  for (let i = 0; i < 20; i++) keys.push(makeKey(r, text))
  const one = () => {
    const key = r.pick(keys)
    return r.next() < delRate ? { op: 'del', key } : { op: 'put', key, value: makeValue(r, text, big) }
  }
  const ops = []
  let n = 0
  while (n < count) {
    if (r.next() < batchRate) {
      const size = 1 + r.int(maxBatch)
      const inner = []
      for (let i = 0; i < size; i++) inner.push(one())
      ops.push({ op: 'batch', ops: inner })
      n += size
    } else {
      ops.push(one())
      n++
    }
  }
  return { ops, keys }
}

// Only versions between operations: a version inside a batch is not a readable tree in JS (the
// earlier blocks of a batch keep only the nodes that later blocks of the batch did not rewrite).
function randomQueries(r, text, keys, valid, sub) {
  const qs = []
  const length = valid[valid.length - 1]
  const anyVersion = () => r.pick(valid)
  const versions = [length, 1, valid[Math.min(1, valid.length - 1)]]
  for (let i = 0; i < 5; i++) versions.push(anyVersion())
  const bound = () => (r.next() < 0.8 ? r.pick(keys) : makeKey(r, text))
  for (const version of versions) {
    for (let i = 0; i < 25; i++) qs.push({ kind: 'get', version, key: r.pick(keys), sub })
    qs.push({ kind: 'get', version, key: makeKey(r, text), sub })
    qs.push({ kind: 'range', version, sub })
    qs.push({ kind: 'range', version, reverse: true, sub })
    for (let i = 0; i < 12; i++) {
      const q = { kind: 'range', version, sub }
      const lo = r.int(3)
      if (lo === 1) q.gt = bound()
      if (lo === 2) q.gte = bound()
      const hi = r.int(3)
      if (hi === 1) q.lt = bound()
      if (hi === 2) q.lte = bound()
      if (r.int(2)) q.reverse = true
      if (r.int(3) === 0) q.limit = r.int(20)
      qs.push(q)
    }
    qs.push({ kind: 'peek', version, sub })
    qs.push({ kind: 'peek', version, reverse: true, sub })
    qs.push({ kind: 'peek', version, gte: bound(), sub })
    const other = anyVersion()
    const at = valid.indexOf(version)
    qs.push({ kind: 'diff', version, other, sub })
    qs.push({ kind: 'diff', version: other, other: version, sub })
    qs.push({ kind: 'diff', version, other: valid[Math.max(0, at - 1 - r.int(5))], sub })
    const d = { kind: 'diff', version, other, gte: bound(), lt: bound(), sub }
    if (r.int(2)) d.limit = r.int(10)
    qs.push(d)
  }
  qs.push({ kind: 'history', version: length, gte: 1, lt: Math.min(length, 40) })
  qs.push({ kind: 'history', version: length, reverse: true, limit: 30 })
  qs.push({ kind: 'history', version: length, gt: -10 })
  return qs
}

function scenarios() {
  const out = []

  // The example of spec/hyperbee.md §6.
  const spec = [
    { op: 'put', key: 'b', value: '2' },
    { op: 'put', key: 'a', value: '1' },
    { op: 'put', key: 'c', value: '3' },
    { op: 'del', key: 'a' }
  ]
  for (let i = 0; i < 10; i++) spec.push({ op: 'put', key: 'k' + i, value: 'v' + i })
  out.push({
    name: 'spec',
    text: true,
    keyEncoding: 'utf-8',
    valueEncoding: 'utf-8',
    ops: spec,
    keys: ['a', 'b', 'c', 'k0', 'k5', 'k9', 'z', '']
  })

  // Single writes of utf-8 keys (unicode, empty, prefixes), with overwrites and deletions.
  {
    const r = rng(1)
    const { ops, keys } = randomOps(r, true, {
      count: 1500,
      pool: 500,
      delRate: 0.3,
      batchRate: 0,
      maxBatch: 1,
      big: true
    })
    out.push({ name: 'utf8', text: true, keyEncoding: 'utf-8', valueEncoding: 'utf-8', ops, keys })
  }

  // Binary keys, mostly in batches (the batch block layout is the subtle part), some singles.
  {
    const r = rng(2)
    const { ops, keys } = randomOps(r, false, {
      count: 3500,
      pool: 2500,
      delRate: 0.2,
      batchRate: 0.3,
      maxBatch: 60,
      big: true
    })
    out.push({ name: 'binary_batches', text: false, keyEncoding: 'binary', valueEncoding: 'binary', ops, keys })
  }

  // Fill, then delete everything (the root shrinks level by level), in batches and singly.
  {
    const r = rng(3)
    const keys = []
    for (let i = 0; i < 300; i++) keys.push(i.toString(16).padStart(4, '0'))
    const ops = []
    const order = keys.slice()
    ops.push({ op: 'batch', ops: order.map((k) => ({ op: 'put', key: k, value: k })) })
    for (let i = order.length - 1; i > 0; i--) {
      const j = r.int(i + 1)
      const t = order[i]
      order[i] = order[j]
      order[j] = t
    }
    ops.push({ op: 'batch', ops: order.slice(0, 150).map((k) => ({ op: 'del', key: k })) })
    for (const k of order.slice(150)) ops.push({ op: 'del', key: k })
    for (const k of keys.slice(0, 40)) ops.push({ op: 'put', key: k, value: '' })
    ops.push({
      op: 'batch',
      ops: keys.slice(0, 40).flatMap((k) => [
        { op: 'del', key: k },
        { op: 'put', key: k, value: 'aa' }
      ])
    })
    ops.push({ op: 'batch', ops: keys.slice(0, 40).map((k) => ({ op: 'del', key: k })) })
    out.push({ name: 'drain', text: false, keyEncoding: 'binary', valueEncoding: 'binary', ops, keys })
  }

  // Sub-databases (nested) next to main keys that sort around the prefixes; header metadata.
  {
    const r = rng(4)
    const ops = []
    const subs = [[], ['users'], ['users', 'x'], ['user'], ['users', 'y'], ['~']]
    const keys = ['', 'a', 'alice', 'bob', 'users', 'users\u0000', 'x', 'zed', 'k1', 'k2', 'k3']
    for (let i = 0; i < 400; i++) {
      const sub = r.pick(subs)
      const key = r.pick(keys) + (r.int(2) ? String(r.int(30)) : '')
      if (r.next() < 0.2) ops.push({ op: 'del', key, sub })
      else ops.push({ op: 'put', key, value: 'v' + i, sub })
    }
    out.push({
      name: 'subs',
      text: true,
      keyEncoding: 'utf-8',
      valueEncoding: 'utf-8',
      metadata: { contentFeed: hex(b4a.alloc(32, 0xcf)), userData: hex(b4a.from('hello')) },
      ops,
      keys,
      subs
    })
  }

  // alwaysDuplicate: false skips puts of an unchanged value; del on a header-only bee.
  {
    const ops = [{ op: 'del', key: 'nothing' }]
    for (let i = 0; i < 60; i++) ops.push({ op: 'put', key: 'k' + (i % 13), value: 'v' + (i % 3) })
    ops.push({ op: 'batch', ops: [{ op: 'put', key: 'k1', value: 'v1' }, { op: 'put', key: 'k1', value: 'v2' }] })
    out.push({
      name: 'no_dup',
      text: true,
      keyEncoding: 'utf-8',
      valueEncoding: 'utf-8',
      alwaysDuplicate: false,
      metadata: {},
      ops,
      keys: ['k0', 'k1', 'k5', 'k12', 'k13', 'nothing']
    })
  }
  return out
}

function beeOpts(sc) {
  const opts = { keyEncoding: sc.keyEncoding, valueEncoding: sc.valueEncoding }
  if (sc.alwaysDuplicate === false) opts.alwaysDuplicate = false
  if (sc.metadata) {
    opts.metadata = {}
    if (sc.metadata.contentFeed) opts.metadata.contentFeed = b4a.from(sc.metadata.contentFeed, 'hex')
    if (sc.metadata.userData) opts.metadata.userData = b4a.from(sc.metadata.userData, 'hex')
  }
  return opts
}

async function withCore(tmp, name, fn) {
  const dir = path.join(tmp, name)
  const core = new Hypercore(dir)
  await core.ready()
  try {
    return await fn(core)
  } finally {
    await core.close()
  }
}

async function answerAll(db, text, queries) {
  const out = []
  for (const q of queries) out.push(await answer(db, text, q))
  return out
}

async function generate(tmp) {
  const out = []
  let n = 0
  for (const sc of scenarios()) {
    const rec = await withCore(tmp, 'gen-' + n++, async (core) => {
      const db = new Hyperbee(core, beeOpts(sc))
      await db.ready()
      const versions = [1]
      for (const op of sc.ops) {
        await applyOp(db, sc.text, op)
        versions.push(core.length)
      }
      const blocks = []
      for (let i = 0; i < core.length; i++) blocks.push(hex(await core.get(i)))
      const r = rng(100 + n)
      let queries = []
      for (const sub of sc.subs || [undefined]) {
        queries = queries.concat(randomQueries(r, sc.text, sc.keys, versions, sub && sub.length ? sub : undefined))
      }
      const answers = await answerAll(db, sc.text, queries)
      await db.close()
      const { subs, keys, ...rest } = sc
      return { ...rest, versions, blocks, queries, answers }
    })
    out.push(rec)
  }
  return out
}

// Codec vectors: each case is the JS object (bytes as hex) and its encoding.
function messageVectors() {
  const H = (x) => (x === null || x === undefined ? x : b4a.from(x, 'hex'))
  const out = { header: [], node: [], index: [], extension: [] }
  const headers = [
    { protocol: 'hyperbee' },
    { protocol: 'hyperbee', metadata: {} },
    { protocol: 'hyperbee', metadata: { contentFeed: 'cf'.repeat(32) } },
    { protocol: 'hyperbee', metadata: { contentFeed: 'cf'.repeat(32), userData: '0102' } },
    { protocol: 'hyperbee', metadata: { userData: '' } },
    { protocol: 'other' }
  ]
  for (const h of headers) {
    const md = h.metadata ? { contentFeed: H(h.metadata.contentFeed), userData: H(h.metadata.userData) } : undefined
    out.header.push({ value: h, encoded: hex(messages.Header.encode({ protocol: h.protocol, metadata: md })) })
  }
  const nodes = [
    { index: '', key: '', value: null },
    { index: '0a00', key: '61', value: '' },
    { index: '0a050a03010203', key: 'ff00', value: '62'.repeat(200) }
  ]
  for (const n of nodes) {
    out.node.push({ value: n, encoded: hex(messages.Node.encode({ index: H(n.index), key: H(n.key), value: H(n.value) })) })
  }
  const indexes = [
    [],
    [{ keys: [], children: [] }],
    [{ keys: [1], children: [] }, { keys: [], children: [] }],
    [{ keys: [300, 2 ** 40, 127, 128], children: [5, 0, 16384, 3, 2 ** 50, 1, 9, 2, 1, 1] }]
  ]
  for (const levels of indexes) out.index.push({ value: levels, encoded: hex(messages.YoloIndex.encode({ levels })) })
  const exts = [
    { cache: { start: 0, end: 10, blocks: [1, 2, 300] } },
    { get: { version: 12, key: '6b6579' } },
    { iterator: { version: 5, gte: '61', lt: '7a', limit: 10, reverse: true, checkpoint: [4, 0, 1, 4, 1, 3] } },
    { iterator: { gt: '', lte: 'ff', reverse: false } }
  ]
  for (const e of exts) {
    const v = JSON.parse(JSON.stringify(e))
    if (v.get) v.get.key = H(v.get.key)
    if (v.iterator) for (const k of ['gte', 'gt', 'lte', 'lt']) if (v.iterator[k] !== undefined) v.iterator[k] = H(v.iterator[k])
    out.extension.push({ value: e, encoded: hex(messages.Extension.encode(v)) })
  }
  return out
}

async function readMode(tmp, input) {
  const answers = []
  let n = 0
  for (const sc of input.scenarios) {
    answers.push(
      await withCore(tmp, 'read-' + n++, async (core) => {
        await core.append(sc.blocks.map((h) => b4a.from(h, 'hex')))
        const db = new Hyperbee(core, { keyEncoding: sc.keyEncoding, valueEncoding: sc.valueEncoding })
        await db.ready()
        const res = await answerAll(db, sc.text, sc.queries)
        await db.close()
        return res
      })
    )
  }
  return { answers }
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hl-bee-'))
  try {
    if (process.argv[2] === 'read') {
      const input = JSON.parse(fs.readFileSync(0, 'utf-8'))
      process.stdout.write(JSON.stringify(await readMode(tmp, input)) + '\n')
    } else {
      const scenarios = await generate(tmp)
      process.stdout.write(JSON.stringify({ messages: messageVectors(), scenarios }) + '\n')
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
