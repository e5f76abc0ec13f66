// Hyperbee 2 throughput (JS hyperbee 2.27.3 on hypercore 11 / RocksDB), the reference for
// bench/bench_bee.py. Usage: node bench/bee.js <puts> <gets> <batch_size>
// Keys are "key-" + 8 hex digits in a shuffled order (same generator as the Python side), values
// 32 bytes. Prints one JSON object: { case: { ops, seconds } }.
'use strict'

const os = require('os')
const fs = require('fs')
const path = require('path')
const Hypercore = require('hypercore')
const Hyperbee = require('hyperbee')
const b4a = require('b4a')

// Knuth multiplicative hash over 0..n-1: a fixed pseudo-random order both sides compute alike.
function keyAt(i) {
  const h = (Math.imul(i, 2654435761) >>> 0).toString(16).padStart(8, '0')
  return 'key-' + h
}

async function withBee(name, fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hl-bench-bee-${name}-`))
  const core = new Hypercore(dir)
  const db = new Hyperbee(core, { keyEncoding: 'utf-8', valueEncoding: 'binary' })
  await db.ready()
  try {
    return await fn(db)
  } finally {
    await db.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function timed(fn) {
  const start = process.hrtime.bigint()
  const ops = await fn()
  return { ops, seconds: Number(process.hrtime.bigint() - start) / 1e9 }
}

async function main() {
  const [puts, gets, batchSize] = process.argv.slice(2).map(Number)
  const value = b4a.alloc(32, 0x76)
  const out = {}
  await withBee('single', async (db) => {
    out.put = await timed(async () => {
      for (let i = 0; i < puts; i++) await db.put(keyAt(i), value)
      return puts
    })
    out.get = await timed(async () => {
      for (let i = 0; i < gets; i++) {
        const e = await db.get(keyAt((i * 7919) % puts))
        if (!e) throw new Error('missing key')
      }
      return gets
    })
    out.range = await timed(async () => {
      let n = 0
      for await (const e of db.createReadStream()) n += e ? 1 : 0 // eslint-disable-line
      return n
    })
  })
  await withBee('batch', async (db) => {
    out.put_batch = await timed(async () => {
      for (let i = 0; i < puts; i += batchSize) {
        const b = db.batch()
        for (let j = i; j < Math.min(puts, i + batchSize); j++) await b.put(keyAt(j), value)
        await b.flush()
      }
      return puts
    })
  })
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
