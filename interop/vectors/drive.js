'use strict'
// Golden vectors for hyperlobby's Hyperdrive 13 / Hyperblobs 2 (tests/test_drive_vectors.py).
//
//   node vectors/drive.js > vectors/drive.json
//
// A Corestore with primary key 32 x 07 opens a new Hyperdrive and runs a fixed list of operations
// (also written to the JSON, so the Python side replays exactly the same ones). Recorded: the drive
// and blobs keys, every db block, every blobs block (sha256) with sizes, both tree hashes, the
// list/readdir/entry/diff/checkout results, and hyperdrive's path normalisation for odd inputs.

const os = require('os')
const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const b4a = require('b4a')

const hex = (b) => b4a.toString(b, 'hex')
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex')

// Deterministic file bytes, recomputed the same way in Python.
function gen(size, seed) {
  const b = b4a.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 255
  return b
}

function dataOf(op) {
  if (op.gen) return gen(op.gen.size, op.gen.seed)
  return b4a.from(op.text || '', 'utf-8')
}

const OPS = [
  { op: 'put', path: '/hello.txt', text: 'hello world' },
  { op: 'put', path: 'b.bin', gen: { size: 70000, seed: 1 } },
  {
    op: 'put',
    path: '/dir/sub/x.txt',
    text: 'x marks the spot\n',
    executable: true,
    metadata: { b: 1, 2: 'two', 1: [1.5, null, true, -0.25], a: { z: 'é\u2028\n\u0001"\\' }, big: 1e21, small: 1e-7, n: 123456789.125 }
  },
  { op: 'symlink', path: '/dir/link', target: '../hello.txt' },
  { op: 'symlink', path: '/abs', target: '/dir/sub/x.txt', metadata: 'a link' },
  { op: 'put', path: '/empty', text: '' },
  { op: 'mark' },
  { op: 'put', path: '/hello.txt', text: 'hello again' },
  { op: 'del', path: '/b.bin' },
  { op: 'put', path: '\\win\\style.txt', text: 'backslashes' },
  { op: 'put', path: '/a/./b/../c.txt', text: 'dots' },
  { op: 'put', path: 'c:/drive/letter.txt', text: 'drive letter' },
  { op: 'put', path: '/big.bin', gen: { size: 200000, seed: 2 } },
  ...Array.from({ length: 14 }, (_, i) => ({ op: 'put', path: `/many/f${String(i).padStart(2, '0')}`, text: `file ${i}` })),
  { op: 'del', path: '/many/f03' },
  { op: 'del', path: '/does-not-exist' },
  { op: 'put', path: '/unicode/héllo ✓.txt', text: 'ünïcödé' },
  { op: 'put', path: '/exact.bin', gen: { size: 131072, seed: 3 } }
]

const NORMALIZE = [
  'a', '/a/', 'a//b', '/a/./b/../c', '\\x\\y', 'c:/x/y', 'file:/x/y', 'http://host/x/y',
  '/a/b/..', './a', 'a/b/c/../../d', '/', '..', '/a/../..', '', 'x:', 'héllo ✓', '/trailing//'
]

async function entryJson(node) {
  if (!node) return null
  return { seq: node.seq, key: node.key, value: node.value }
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hl-drive-vec-'))
  try {
    const primaryKey = b4a.alloc(32, 7)
    const store = new Corestore(path.join(tmp, 'store'), { primaryKey, unsafe: true })
    const drive = new Hyperdrive(store)
    await drive.ready()
    let mark = 0
    for (const op of OPS) {
      if (op.op === 'put') {
        await drive.put(op.path, dataOf(op), { executable: !!op.executable, metadata: op.metadata === undefined ? null : op.metadata })
      } else if (op.op === 'symlink') {
        await drive.symlink(op.path, op.target, { metadata: op.metadata === undefined ? null : op.metadata })
      } else if (op.op === 'del') {
        await drive.del(op.path)
      } else if (op.op === 'mark') {
        mark = drive.version
      }
    }
    const db = drive.core
    const blobs = (await drive.getBlobs()).core
    const dbBlocks = []
    for (let i = 0; i < db.length; i++) dbBlocks.push(hex(await db.get(i)))
    const blobBlocks = []
    for (let i = 0; i < blobs.length; i++) {
      const b = await blobs.get(i)
      blobBlocks.push({ size: b.byteLength, sha256: sha(b) })
    }
    const list = []
    for await (const e of drive.list('/')) list.push(await entryJson(e))
    const shallow = []
    for await (const e of drive.list('/dir', { recursive: false })) shallow.push(e.key)
    const readdir = {}
    for (const f of ['/', '/dir', '/many', '/nope', 'dir/sub/']) {
      readdir[f] = []
      for await (const name of drive.readdir(f)) readdir[f].push(name)
    }
    const follow = {}
    for (const p of ['/dir/link', '/abs', '/hello.txt', '/missing']) {
      const e = await drive.entry(p, { follow: true })
      follow[p] = e ? e.key : null
    }
    const diff = []
    for await (const d of drive.diff(mark, '/')) {
      diff.push({ left: d.left ? { seq: d.left.seq, key: d.left.key } : null, right: d.right ? { seq: d.right.seq, key: d.right.key } : null })
    }
    const old = drive.checkout(mark)
    const checkout = []
    for await (const e of old.list('/')) checkout.push(e.key)
    const files = {}
    for (const e of list) {
      if (e.value.blob) files[e.key] = sha(await drive.get(e.key))
    }
    const normalize = NORMALIZE.map((p) => {
      try {
        return { input: p, output: Hyperdrive.normalizePath(p) }
      } catch (err) {
        return { input: p, error: err.message }
      }
    })
    const out = {
      primary_key: hex(primaryKey),
      ops: OPS,
      mark,
      drive_key: hex(drive.key),
      content_key: hex(drive.contentKey),
      db_blocks: dbBlocks,
      db_tree_hash: hex(await db.treeHash()),
      blobs_length: blobs.length,
      blobs_byte_length: blobs.byteLength,
      blobs_blocks: blobBlocks,
      blobs_tree_hash: hex(await blobs.treeHash()),
      version: drive.version,
      list,
      shallow,
      readdir,
      follow,
      diff,
      checkout,
      files,
      normalize
    }
    process.stdout.write(JSON.stringify(out, null, 1) + '\n')
    await drive.close()
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
