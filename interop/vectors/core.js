// Golden vectors for hyperlobby's Hypercore + Store: runs the pinned JS corestore / hypercore,
// appends fixed blocks (single and batched), truncates once, and prints every head state as JSON.
// Output: interop/vectors/core.json (regenerate: node vectors/core.js > vectors/core.json).
'use strict'

const os = require('os')
const fs = require('fs')
const path = require('path')
const Corestore = require('corestore')
const Hypercore = require('hypercore')
const crypto = require('hypercore-crypto')
const b4a = require('b4a')

const hex = (b) => (b ? b4a.toString(b, 'hex') : null)

// Each step is either { append: [hex blocks] } or { truncate: n }.
function steps() {
  const s = []
  s.push({ append: [b4a.from('hello')] })
  s.push({ append: [b4a.from('world'), b4a.from('!')] })
  s.push({ append: [b4a.alloc(0)] })
  s.push({ append: [b4a.alloc(1000, 0x5a)] })
  const batch = []
  for (let i = 0; i < 9; i++) batch.push(b4a.alloc(i * 37 + 1, i))
  s.push({ append: batch })
  s.push({ append: [b4a.alloc(70000, 0xab)] })
  s.push({ truncate: 6 })
  s.push({ append: [b4a.from('after'), b4a.from('truncate')] })
  s.push({ truncate: 3 })
  s.push({ append: [b4a.from('third fork')] })
  return s
}

async function head(core) {
  const st = core.core.state
  const roots = st.roots.map((r) => ({ index: r.index, size: r.size, hash: hex(r.hash) }))
  return {
    length: core.length,
    byte_length: core.byteLength,
    fork: core.fork,
    tree_hash: hex(await core.treeHash()),
    signature: hex(st.signature),
    roots
  }
}

async function run(core) {
  await core.ready()
  const out = {
    key: hex(core.key),
    discovery_key: hex(core.discoveryKey),
    id: core.id,
    manifest: hex(core.getManifest({ raw: true })),
    public_key: hex(core.keyPair.publicKey),
    states: []
  }
  for (const step of steps()) {
    if (step.append) {
      await core.append(step.append)
      out.states.push({ append: step.append.map(hex), ...(await head(core)) })
    } else {
      await core.truncate(step.truncate)
      out.states.push({ truncate: step.truncate, ...(await head(core)) })
    }
  }
  return out
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hl-core-'))
  try {
    const primaryKey = b4a.alloc(32, 7)
    const store = new Corestore(path.join(tmp, 'store'), { primaryKey, unsafe: true })
    await store.ready()
    const named = []
    const specs = [
      { ns: [], name: 'db' },
      { ns: [], name: 'blobs' },
      { ns: ['app'], name: 'db' },
      { ns: ['app', 'inner'], name: 'log' },
      { ns: [], name: 'héllo ✓' }
    ]
    for (const spec of specs) {
      let s = store
      for (const n of spec.ns) s = s.namespace(n)
      const core = s.get({ name: spec.name })
      named.push({ namespace: spec.ns, name: spec.name, ...(await run(core)) })
      await core.close()
    }
    await store.close()

    const plain = []
    for (const variant of [
      { seed: '00', compat: false },
      { seed: '00', compat: true },
      { seed: '42', compat: false },
      { seed: '42', compat: true }
    ]) {
      const keyPair = crypto.keyPair(b4a.alloc(32, parseInt(variant.seed, 16)))
      const dir = path.join(tmp, `plain-${variant.seed}-${variant.compat}`)
      const core = new Hypercore(dir, { keyPair, compat: variant.compat })
      plain.push({ seed: variant.seed, compat: variant.compat, ...(await run(core)) })
      await core.close()
    }

    process.stdout.write(JSON.stringify({ primary_key: hex(primaryKey), named, plain }, null, 1) + '\n')
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
