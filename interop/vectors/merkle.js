// Golden vectors for hyperlobby.core.merkle / flat_tree, printed by the pinned JS packages.
// Run: node vectors/merkle.js  (from interop/). Uses temporary storage dirs and removes them.
//
// Output:
//   flat: flat-tree answers for a range of indexes.
//   cores.<compat|default>: for each sampled length, the roots, tree hash, byte length, signature,
//     every stored node, byte offsets/seeks and the proofs JS builds for a set of requests
//     (each either a proof or {error}).
//   sparse: a replica that downloaded a few blocks: its stored nodes and missingNodes(i).
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const flat = require('flat-tree')
const crypto = require('hypercore-crypto')
const Hypercore = require('hypercore')
const { MerkleTree } = require('hypercore/lib/merkle-tree')

const hex = (b) => (b === null || b === undefined ? null : b4a.toString(b, 'hex'))
const tmpdirs = []
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hyperlobby-merkle-'))
  tmpdirs.push(d)
  return d
}

const LENGTHS = [1, 2, 3, 5, 11, 16, 37]
const PROOF_LENGTHS = [3, 11, 16, 37]
const TOTAL = 37

// Block i: varied sizes (some empty), deterministic content.
function block (i) {
  const size = (i * 7919 + 3) % 61
  const b = b4a.alloc(size)
  for (let j = 0; j < size; j++) b[j] = (i * 31 + j * 7) & 255
  return b
}

const nodeJSON = (n) => [n.index, n.size, hex(n.hash)]

// Proof nodes are written as indexes only; every one is checked here against the core's stored
// node (index, size and hash), so the node table of the snapshot restores the exact proof.
function proofJSON (p, table, signature) {
  const ref = (n) => {
    const t = table.get(n.index)
    if (!t || t[1] !== n.size || t[2] !== hex(n.hash)) throw new Error('proof node differs from stored node ' + n.index)
    return n.index
  }
  if (p.upgrade && hex(p.upgrade.signature) !== signature) throw new Error('unexpected upgrade signature')
  return {
    fork: p.fork,
    block: p.block ? { index: p.block.index, nodes: p.block.nodes.map(ref) } : null,
    hash: p.hash ? { index: p.hash.index, nodes: p.hash.nodes.map(ref) } : null,
    seek: p.seek ? { bytes: p.seek.bytes, nodes: p.seek.nodes.map(ref) } : null,
    upgrade: p.upgrade
      ? {
          start: p.upgrade.start,
          length: p.upgrade.length,
          nodes: p.upgrade.nodes.map(ref),
          additionalNodes: p.upgrade.additionalNodes.map(ref)
        }
      : null
  }
}

// The requests asked of a core of `length` blocks (deterministic, covers every proof shape).
function requests (length, byteLength) {
  const out = []
  const seekPoints = [0, 1, Math.floor(byteLength / 3), Math.floor(byteLength / 2), byteLength - 1, byteLength]
  for (let i = 0; i < length; i++) {
    for (let n = 0; n <= 7; n++) out.push({ block: { index: i, nodes: n } })
  }
  for (let idx = 0; idx < 2 * length; idx++) {
    for (const n of [0, 1, 2, 3]) out.push({ hash: { index: idx, nodes: n } })
  }
  for (let s = 0; s < length; s++) {
    for (let l = 1; s + l <= length; l++) out.push({ upgrade: { start: s, length: l } })
  }
  const step = length > 20 ? 3 : 1
  for (let s = 0; s < length; s++) {
    const l = length - s
    const mid = Math.max(1, Math.floor(l / 2))
    for (let i = (s % step); i < length; i += step) {
      out.push({ block: { index: i, nodes: 0 }, upgrade: { start: s, length: l } })
      if (i % 3 === 0) out.push({ block: { index: i, nodes: 2 }, upgrade: { start: s, length: mid } })
    }
    for (let idx = s % 3; idx < 2 * length; idx += 3 * step) {
      out.push({ hash: { index: idx, nodes: 0 }, upgrade: { start: s, length: l } })
    }
    for (const bytes of seekPoints) {
      out.push({ seek: { bytes, padding: 0 }, upgrade: { start: s, length: l } })
    }
    out.push({ block: { index: Math.max(0, s - 1), nodes: 1 }, seek: { bytes: 0, padding: 0 }, upgrade: { start: s, length: l } })
  }
  for (let i = 0; i < length; i += 2) {
    for (const n of [1, 2, 3, 4, 5]) {
      for (const bytes of seekPoints) out.push({ block: { index: i, nodes: n }, seek: { bytes, padding: 0 } })
    }
  }
  for (const bytes of seekPoints) {
    out.push({ seek: { bytes, padding: 0 } })
    out.push({ seek: { bytes, padding: 1 }, upgrade: { start: 0, length } })
  }
  // malformed
  out.push({ upgrade: { start: length, length: 1 } })
  out.push({ upgrade: { start: 0, length: length + 1 } })
  out.push({ upgrade: { start: 1, length: 0 } })
  return out
}

function clone (r) {
  return JSON.parse(JSON.stringify(r))
}

// As the replicator does: build the proof against a read batch, flush it, then settle.
async function generate (core, req) {
  const rx = core.state.storage.read()
  let proof
  try {
    proof = await MerkleTree.proof(core.state, rx, req)
  } finally {
    rx.tryFlush()
  }
  const settled = await proof.settle()
  if (settled.block) settled.block.value = await core.get(req.block.index)
  return settled
}

async function nodesOf (core, length) {
  const nodes = []
  for (let i = 0; i < 2 * length; i++) {
    const n = await MerkleTree.get(core.state, i)
    if (n) nodes.push(nodeJSON(n))
  }
  return nodes
}

async function snapshot (core, withProofs) {
  const length = core.length
  const roots = await MerkleTree.getRoots(core.state, length)
  const snap = {
    length,
    fork: core.fork,
    byteLength: core.byteLength,
    roots: roots.map(nodeJSON),
    treeHash: hex(await core.treeHash()),
    signature: hex(core.core.state.signature),
    nodes: await nodesOf(core, length),
    byteOffsets: [],
    seeks: []
  }
  // Byte offsets as the sum of the block sizes before each block (MerkleTree.byteOffset itself returns
  // NaN for blocks after the first root in this version; see seekUntrustedTree in merkle.py).
  for (let i = 0, sum = 0; i <= length; i++) {
    snap.byteOffsets.push(sum)
    if (i < length) sum += (await core.get(i)).byteLength
  }
  for (let b = 0; b <= core.byteLength; b += Math.max(1, Math.floor(core.byteLength / 40))) {
    snap.seeks.push([b, await core.seek(b)])
  }
  snap.seeks.push([core.byteLength, await core.seek(core.byteLength)])
  for (const padding of [1, 2]) {
    const size = core.byteLength - padding * length
    for (let b = 0; b <= size; b += Math.max(1, Math.floor(size / 10))) {
      const seeker = MerkleTree.seek(core.state, b, padding)
      snap.seeks.push([b, await seeker.update(), padding])
    }
  }
  if (withProofs) {
    snap.proofs = []
    const table = new Map(snap.nodes.map((n) => [n[0], n]))
    for (const req of requests(length, core.byteLength)) {
      const entry = { request: clone(req) }
      try {
        const p = await generate(core, clone(req))
        if (p.block && !b4a.equals(p.block.value, block(p.block.index))) throw new Error('block value')
        entry.proof = proofJSON(p, table, snap.signature)
      } catch (err) {
        entry.error = err.code || err.message
      }
      snap.proofs.push(entry)
    }
  }
  return snap
}

async function coreVectors (compat) {
  const kp = crypto.keyPair(b4a.alloc(32, 0))
  const core = new Hypercore(tmp(), { keyPair: kp, compat })
  await core.ready()
  const out = { key: hex(core.key), publicKey: hex(kp.publicKey), compat, lengths: [] }
  for (let i = 0; i < TOTAL; i++) {
    await core.append(block(i))
    if (LENGTHS.includes(core.length)) {
      out.lengths.push(await snapshot(core, compat && PROOF_LENGTHS.includes(core.length)))
    }
  }
  // a truncation: new fork, roots of the shorter tree
  await core.truncate(13)
  out.truncated = await snapshot(core, true)
  await core.close()
  return out
}

async function sparseVectors () {
  const kp = crypto.keyPair(b4a.alloc(32, 0))
  const writer = new Hypercore(tmp(), { keyPair: kp, compat: true })
  await writer.ready()
  for (let i = 0; i < 21; i++) await writer.append(block(i))

  const reader = new Hypercore(tmp(), writer.key, { compat: true })
  await reader.ready()
  const s1 = writer.replicate(true)
  const s2 = reader.replicate(false)
  s1.pipe(s2).pipe(s1)
  await reader.update({ wait: true })
  const fetched = [3, 9, 17]
  for (const i of fetched) await reader.get(i)
  const missing = []
  for (let i = 0; i < reader.length; i++) missing.push(await reader.missingNodes(i))
  const nodes = await nodesOf(reader, reader.length)
  const roots = await MerkleTree.getRoots(reader.state, reader.length)
  const out = {
    length: reader.length,
    fetched,
    roots: roots.map(nodeJSON),
    nodes,
    missingNodes: missing
  }
  s1.destroy()
  s2.destroy()
  await reader.close()
  await writer.close()
  return out
}

// A proof that fails half-way leaves node reads behind that reject on their own; they belong to
// the request that already failed (and is recorded as an error).
process.on('unhandledRejection', (err) => {
  if (!err || err.code !== 'INVALID_OPERATION') throw err
})

async function main () {
  const out = {}
  out.blocks = []
  for (let i = 0; i < TOTAL; i++) out.blocks.push(hex(block(i)))

  out.flat = []
  for (let i = 0; i < 80; i++) {
    out.flat.push({
      index: i,
      depth: flat.depth(i),
      offset: flat.offset(i),
      parent: flat.parent(i),
      sibling: flat.sibling(i),
      children: flat.children(i),
      spans: flat.spans(i),
      leftSpan: flat.leftSpan(i),
      rightSpan: flat.rightSpan(i),
      count: flat.count(i),
      countLeaves: flat.countLeaves(i)
    })
  }
  out.fullRoots = []
  for (let len = 0; len <= 70; len++) out.fullRoots.push(flat.fullRoots(2 * len))

  out.cores = {
    compat: await coreVectors(true),
    default: await coreVectors(false)
  }
  out.sparse = await sparseVectors()
  process.stdout.write(JSON.stringify(out) + '\n')
}

main()
  .catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(() => {
    for (const d of tmpdirs) fs.rmSync(d, { recursive: true, force: true })
  })
