// Append throughput of JS hypercore 11 (RocksDB storage), the reference for bench/bench_core.py.
// Usage: node bench/core_append.js <single_count> <batch_count> <batch_size> <big_count>
// Prints one JSON object: { case: { blocks, bytes, seconds } }.
'use strict'

const os = require('os')
const fs = require('fs')
const path = require('path')
const Hypercore = require('hypercore')
const b4a = require('b4a')

async function timed(name, blockSize, fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hl-bench-${name}-`))
  const core = new Hypercore(dir)
  await core.ready()
  try {
    const start = process.hrtime.bigint()
    const blocks = await fn(core)
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    return { blocks, bytes: blocks * blockSize, seconds }
  } finally {
    await core.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function main() {
  const [single, batches, batchSize, big] = process.argv.slice(2).map(Number)
  const kib = b4a.alloc(1024, 0x61)
  const mib = b4a.alloc(1024 * 1024, 0x62)
  const out = {}
  out.single_1k = await timed('single', 1024, async (core) => {
    for (let i = 0; i < single; i++) await core.append(kib)
    return single
  })
  const batch = new Array(batchSize).fill(kib)
  out.batch_1k = await timed('batch', 1024, async (core) => {
    for (let i = 0; i < batches; i++) await core.append(batch)
    return batches * batchSize
  })
  out.single_1m = await timed('big', mib.length, async (core) => {
    for (let i = 0; i < big; i++) await core.append(mib)
    return big
  })
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
