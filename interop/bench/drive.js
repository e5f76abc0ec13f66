// Hyperdrive 13 throughput (JS hyperdrive 13.3.4 on corestore 7 / RocksDB), the reference for
// bench/bench_drive.py. Usage: node bench/drive.js <files> <file_size> <big_size>
// Cases: `write` puts <files> files of <file_size> bytes one by one (/d/<i>/f-<i>), `read` gets
// them back in the same order, `big_write`/`big_read` put and get one <big_size>-byte file.
// Prints one JSON object: { case: { ops, bytes, seconds } }.
'use strict'

const os = require('os')
const fs = require('fs')
const path = require('path')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const b4a = require('b4a')

function fileData(i, size) {
  const b = b4a.alloc(size)
  for (let j = 0; j < size; j++) b[j] = (i * 131 + j * 7) & 255
  return b
}

const name = (i) => `/d/${i % 32}/f-${i}`

async function timed(fn) {
  const start = process.hrtime.bigint()
  const res = await fn()
  return { ...res, seconds: Number(process.hrtime.bigint() - start) / 1e9 }
}

async function main() {
  const [files, size, bigSize] = process.argv.slice(2).map(Number)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hl-bench-drive-'))
  const drive = new Hyperdrive(new Corestore(dir))
  await drive.ready()
  const out = {}
  try {
    const data = Array.from({ length: files }, (_, i) => fileData(i, size))
    out.write = await timed(async () => {
      for (let i = 0; i < files; i++) await drive.put(name(i), data[i])
      return { ops: files, bytes: files * size }
    })
    out.read = await timed(async () => {
      for (let i = 0; i < files; i++) {
        const got = await drive.get(name(i))
        if (!got || got.byteLength !== size) throw new Error('bad read ' + i)
      }
      return { ops: files, bytes: files * size }
    })
    const big = fileData(7, bigSize)
    out.big_write = await timed(async () => {
      await drive.put('/big.bin', big)
      return { ops: 1, bytes: bigSize }
    })
    out.big_read = await timed(async () => {
      const got = await drive.get('/big.bin')
      if (!got || got.byteLength !== bigSize) throw new Error('bad big read')
      return { ops: 1, bytes: bigSize }
    })
  } finally {
    await drive.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
