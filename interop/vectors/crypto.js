// Golden vectors for hyperlobby.crypto, printed by the pinned JS packages.
// Run: node vectors/crypto.js  (from interop/). Uses temporary storage dirs and removes them.
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const c = require('compact-encoding')
const crypto = require('hypercore-crypto')
const Hypercore = require('hypercore')
const Corestore = require('corestore')
const caps = require('hypercore/lib/caps')
const messages = require('hypercore/lib/messages')
const Verifier = require('hypercore/lib/verifier')
const multisig = require('hypercore/lib/multisig')

const hex = (b) => (b === null || b === undefined ? null : b4a.toString(b, 'hex'))
const fill = (n) => b4a.alloc(32, n)
const tmpdirs = []
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hyperlobby-crypto-'))
  tmpdirs.push(d)
  return d
}

// A manifest as JSON: every buffer as hex, in the field order of the Python record.
function manifestJSON (m) {
  return {
    version: m.version,
    hash: m.hash,
    allowPatch: m.allowPatch,
    quorum: m.quorum,
    signers: m.signers.map((s) => ({ signature: s.signature, namespace: hex(s.namespace), publicKey: hex(s.publicKey) })),
    prologue: m.prologue ? { hash: hex(m.prologue.hash), length: m.prologue.length } : null,
    linked: m.linked ? m.linked.map(hex) : null,
    userData: hex(m.userData)
  }
}

// A stand-in for hypercore's tree batch: all a Verifier needs is the signables and the tree hash.
function fakeBatch (treeHash, length, fork) {
  return {
    length,
    fork,
    hash: () => treeHash,
    signable: (ns) => caps.treeSignable(ns, treeHash, length, fork),
    signableCompat: (noHeader) => caps.treeSignableCompat(treeHash, length, fork, noHeader)
  }
}

async function main () {
  const out = {}

  // --- namespaces ------------------------------------------------------------
  out.namespaces = {
    hypercore: crypto.namespace('hypercore', 6).map(hex),
    'hyperswarm/secret-stream': crypto.namespace('hyperswarm/secret-stream', 3).map(hex),
    corestore: crypto.namespace('corestore', 1).map(hex),
    hyperdrive: crypto.namespace('hyperdrive', 1).map(hex)
  }
  out.caps_constants = {
    MANIFEST: hex(caps.MANIFEST),
    DEFAULT_NAMESPACE: hex(caps.DEFAULT_NAMESPACE),
    DEFAULT_ENCRYPTION: hex(caps.DEFAULT_ENCRYPTION)
  }

  // --- key pairs, default manifests, core keys --------------------------------
  out.seeds = []
  for (const byte of [0x00, 0x01, 0x42]) {
    const seed = fill(byte)
    const kp = crypto.keyPair(seed)
    const manifest = Verifier.defaultSignerManifest(kp.publicKey)
    const core = new Hypercore(tmp(), { keyPair: kp })
    await core.ready()
    const compat = new Hypercore(tmp(), { keyPair: kp, compat: true })
    await compat.ready()
    const message = b4a.from('hyperlobby signs this')
    out.seeds.push({
      seed: hex(seed),
      publicKey: hex(kp.publicKey),
      secretKey: hex(kp.secretKey),
      message: hex(message),
      signature: hex(crypto.sign(message, kp.secretKey)),
      defaultManifest: hex(Verifier.encodeManifest(manifest)),
      key: hex(Hypercore.key(kp.publicKey)),
      coreKey: hex(core.key),
      discoveryKey: hex(core.discoveryKey),
      id: core.id,
      compatKey: hex(compat.key),
      compatDiscoveryKey: hex(compat.discoveryKey)
    })
    await core.close()
    await compat.close()
  }

  // --- manifest encodings -------------------------------------------------------
  const A = fill(0xaa); const B = fill(0xbb); const C = fill(0xcc); const N = fill(0x11); const P = fill(0x22)
  const shapes = {
    default_v1: { signers: [{ publicKey: A }] },
    multi_patch: { quorum: 2, allowPatch: true, signers: [{ publicKey: A, namespace: N }, { publicKey: B, namespace: N }] },
    three_default_quorum: { signers: [{ publicKey: A }, { publicKey: B }, { publicKey: C }] },
    four_default_quorum: { signers: [{ publicKey: A }, { publicKey: B }, { publicKey: C }, { publicKey: N }] },
    static_prologue: { quorum: 0, signers: [], prologue: { hash: P, length: 5 } },
    signer_and_prologue: { signers: [{ publicKey: A }], prologue: { hash: P, length: 300 } },
    v2_linked_userdata: { signers: [{ publicKey: A, namespace: N }], linked: [B], userData: b4a.from('hi') },
    v2_userdata_only: { signers: [{ publicKey: A }], userData: b4a.from('some user data') },
    v2_linked_two: { signers: [{ publicKey: A }], linked: [B, C] },
    v3_plain: { version: 3, signers: [{ publicKey: A }] },
    v2_explicit: { version: 2, signers: [{ publicKey: A }] },
    v0_single: { version: 0, signers: [{ publicKey: A, namespace: N }] },
    v0_multi: { version: 0, quorum: 2, allowPatch: true, signers: [{ publicKey: A }, { publicKey: B }] },
    v0_multi_quorum1: { version: 0, quorum: 1, signers: [{ publicKey: A }, { publicKey: B }] },
    v0_single_patch: { version: 0, allowPatch: true, signers: [{ publicKey: A }] },
    v0_prologue: { version: 0, quorum: 0, signers: [], prologue: { hash: P, length: 0 } },
    no_signers: { signers: [] }
  }
  out.manifests = []
  for (const [name, input] of Object.entries(shapes)) {
    const m = Verifier.createManifest(input)
    const encoded = Verifier.encodeManifest(m)
    out.manifests.push({
      name,
      manifest: manifestJSON(m),
      encoded: hex(encoded),
      decoded: manifestJSON(Verifier.decodeManifest(encoded)),
      key: hex(Hypercore.key(m)),
      discoveryKey: hex(crypto.discoveryKey(Hypercore.key(m)))
    })
  }
  out.create_manifest_errors = []
  for (const [name, input] of Object.entries({
    quorum_too_high: { quorum: 3, signers: [{ publicKey: A }] },
    userdata_v1: { version: 1, signers: [{ publicKey: A }], userData: b4a.from('x') },
    linked_v1: { version: 1, signers: [{ publicKey: A }], linked: [B] },
    bad_prologue: { signers: [], prologue: { hash: b4a.alloc(31), length: 1 } }
  })) {
    try {
      Verifier.createManifest(input)
      out.create_manifest_errors.push({ name, error: null })
    } catch (err) {
      out.create_manifest_errors.push({ name, error: err.message })
    }
  }
  const badManifests = ['', '04000000', '01000100', '0100000101', '01000001010001', '00000300',
    '0000', '00010000', '0102000000' + '22'.repeat(32), '010000', '01080000' + '00' + '05',
    '01080000' + '00' + '05' + '6869', '0108000000026869', '010800000000', '010400000000', '0110000000',
    '0104000000' + '01' + 'bb'.repeat(32), '0101000100', '03000000', '01000000fd0000', '00000201' + '02' + '00'.repeat(64), '0104000000' + '02' + 'bb'.repeat(32)]
  out.manifest_decode = badManifests.map((h) => {
    try {
      return { hex: h, ok: manifestJSON(Verifier.decodeManifest(b4a.from(h, 'hex'))) }
    } catch (err) {
      return { hex: h, error: err.message }
    }
  })

  // --- real cores: tree hash, signable and signature after each append ---------
  const blocks = ['hello', 'world', '!', 'a fourth block', '', 'six', 'seven', 'eight, the last']
  out.cores = []
  for (const [kind, opts] of [['default', {}], ['compat', { compat: true }]]) {
    for (const byte of [0x00, 0x42]) {
      const kp = crypto.keyPair(fill(byte))
      const core = new Hypercore(tmp(), { keyPair: kp, ...opts })
      await core.ready()
      const steps = []
      const record = (op) => {
        const st = core.state
        const h = st.hash()
        steps.push({
          op,
          length: core.length,
          fork: core.fork,
          byteLength: core.byteLength,
          treeHash: hex(h),
          signable: hex(core.core.compat
            ? caps.treeSignableCompat(h, core.length, core.fork, false)
            : caps.treeSignable(core.key, h, core.length, core.fork)),
          signature: hex(st.signature)
        })
      }
      for (const b of blocks) {
        await core.append(b4a.from(b))
        record('append ' + JSON.stringify(b))
      }
      await core.truncate(5)
      record('truncate 5')
      await core.append(b4a.from('after truncate'))
      record('append "after truncate"')
      out.cores.push({
        kind,
        seed: hex(fill(byte)),
        key: hex(core.key),
        compat: core.core.compat,
        manifest: core.core.header.manifest ? hex(Verifier.encodeManifest(core.core.header.manifest)) : null,
        steps
      })
      await core.close()
    }
  }

  // --- verifier: signatures made with lib/verifier.js for fixed batches -------------
  const kps = [0x00, 0x01, 0x42].map((b) => crypto.keyPair(fill(b)))
  const th = crypto.hash(b4a.from('a made-up tree hash'))
  const cases = []
  const addCase = (name, manifest, opts, batch, signature) => {
    const key = opts && opts.compat ? manifest.signers[0].publicKey : Verifier.manifestHash(manifest)
    const v = new Verifier(key, manifest, opts || {})
    cases.push({
      name,
      manifest: hex(Verifier.encodeManifest(manifest)),
      key: hex(key),
      compat: v.compat,
      legacy: !!(opts && opts.legacy),
      treeHash: hex(batch.hash()),
      length: batch.length,
      fork: batch.fork,
      signature: hex(signature),
      valid: tryVerify(v, batch, signature)
    })
  }
  // JS throws on a container that does not decode; that is recorded as "throws" (Python: False).
  const tryVerify = (v, b, s) => {
    try {
      return v.verify(b, s)
    } catch {
      return 'throws'
    }
  }
  const batch = fakeBatch(th, 7, 0)
  const batchFork = fakeBatch(th, 9, 3)
  const single = Verifier.createManifest({ signers: [{ publicKey: kps[0].publicKey }] })
  const singleSig = Verifier.fromManifest(single).sign(batch, kps[0])
  addCase('v1 single signer', single, null, batch, singleSig)
  addCase('v1 single signer, fork 3', single, null, batchFork, Verifier.fromManifest(single).sign(batchFork, kps[0]))
  addCase('v1 single signer, wrong length', single, null, fakeBatch(th, 8, 0), singleSig)
  addCase('v1 raw 64-byte signature is rejected', single, null, batch, multisig.inflate(singleSig).proofs[0].signature)
  addCase('v1 empty signature', single, null, batch, b4a.alloc(0))

  const compatM = Verifier.createManifest({ signers: [{ publicKey: kps[1].publicKey }] })
  const compatV = new Verifier(kps[1].publicKey, compatM, { compat: true })
  addCase('compat', compatM, { compat: true }, batch, compatV.sign(batch, kps[1]))
  const legacyV = new Verifier(kps[1].publicKey, compatM, { compat: true, legacy: true })
  addCase('compat legacy', compatM, { compat: true, legacy: true }, batch, legacyV.sign(batch, kps[1]))
  addCase('compat, signature from legacy mode', compatM, { compat: true }, batch, legacyV.sign(batch, kps[1]))

  const v0 = Verifier.createManifest({ version: 0, signers: [{ publicKey: kps[2].publicKey, namespace: N }] })
  addCase('v0 single signer', v0, null, batch, Verifier.fromManifest(v0).sign(batch, kps[2]))

  const multi = Verifier.createManifest({ quorum: 2, signers: kps.map((k) => ({ publicKey: k.publicKey })) })
  const mv = Verifier.fromManifest(multi)
  const sig = (i) => mv.signers[i].sign(batch, kps[i])
  const proof = (signer, s) => ({ signer, signature: s, patch: 0, nodes: null })
  addCase('multisig 2 of 3 (0,1)', multi, null, batch, mv.assemble([proof(0, sig(0)), proof(1, sig(1))]))
  addCase('multisig 2 of 3 (2,0)', multi, null, batch, mv.assemble([proof(2, sig(2)), proof(0, sig(0))]))
  addCase('multisig 2 of 3 (1,2,0) extra proof', multi, null, batch,
    mv.assemble([proof(1, sig(1)), proof(2, sig(2)), proof(0, b4a.alloc(64))]))
  addCase('multisig only one proof', multi, null, batch, mv.assemble([proof(0, sig(0))]))
  addCase('multisig repeated signer', multi, null, batch, mv.assemble([proof(0, sig(0)), proof(0, sig(0))]))
  addCase('multisig signer out of range', multi, null, batch, mv.assemble([proof(0, sig(0)), proof(3, sig(1))]))
  addCase('multisig wrong signer index', multi, null, batch, mv.assemble([proof(0, sig(0)), proof(2, sig(1))]))
  addCase('multisig bad second signature', multi, null, batch, mv.assemble([proof(0, sig(0)), proof(1, sig(0))]))
  addCase('multisig patch ignored without allowPatch', multi, null, batch,
    mv.assemble([{ signer: 0, signature: sig(0), patch: 2, nodes: [{ index: 1, size: 3, hash: th }] }, proof(1, sig(1))]))

  const multi0 = Verifier.createManifest({ version: 0, quorum: 2, signers: kps.map((k) => ({ publicKey: k.publicKey, namespace: N })) })
  const mv0 = Verifier.fromManifest(multi0)
  const sig0 = (i) => mv0.signers[i].sign(batch, kps[i])
  addCase('v0 multisig 2 of 3', multi0, null, batch, mv0.assemble([proof(0, sig0(0)), proof(2, sig0(2))]))
  addCase('v0 multisig repeated', multi0, null, batch, mv0.assemble([proof(1, sig0(1)), proof(1, sig0(1))]))

  const prolo = Verifier.createManifest({ signers: [{ publicKey: kps[0].publicKey }], prologue: { hash: th, length: 7 } })
  addCase('prologue exact, no signature', prolo, null, batch, null)
  addCase('prologue wrong hash', prolo, null, fakeBatch(crypto.hash(b4a.from('x')), 7, 0), null)
  addCase('prologue shorter length', prolo, null, fakeBatch(th, 6, 0), null)
  const longer = fakeBatch(th, 8, 0)
  addCase('prologue longer, signed', prolo, null, longer, Verifier.fromManifest(prolo).sign(longer, kps[0]))
  const stat = Verifier.createManifest({ quorum: 0, signers: [], prologue: { hash: th, length: 7 } })
  addCase('static core at prologue', stat, null, batch, null)
  addCase('static core past prologue', stat, null, longer, b4a.alloc(0))
  out.verifier = cases

  // Multisig containers with patch nodes (encoding only; the patch rule is not exercised).
  const patchInputs = [
    { signer: 0, signature: sig(0), patch: 2, nodes: [{ index: 13, size: 9, hash: fill(0x31) }, { index: 19, size: 4, hash: fill(0x32) }] },
    { signer: 2, signature: sig(2), patch: 1, nodes: [{ index: 13, size: 9, hash: fill(0x31) }] },
    { signer: 1, signature: sig(1), patch: 0, nodes: null }
  ]
  const withPatch = multisig.assemble(patchInputs)
  const v0patch = multisig.assemblev0(patchInputs)
  const jsonProofs = (p) => ({
    proofs: p.proofs.map((x) => ({
      signer: x.signer,
      signature: hex(x.signature),
      patch: x.patch && typeof x.patch === 'object'
        ? { start: x.patch.start, length: x.patch.length, nodes: x.patch.nodes }
        : x.patch
    })),
    patch: p.patch.map((n) => ({ index: n.index, size: n.size, hash: hex(n.hash) }))
  })
  out.multisig = {
    v1: { hex: hex(withPatch), decoded: jsonProofs(multisig.inflate(withPatch)) },
    v0: { hex: hex(v0patch), decoded: jsonProofs(multisig.inflatev0(v0patch)) }
  }

  // --- corestore ---------------------------------------------------------------------
  const primaryKey = fill(0x07)
  const store = new Corestore(tmp(), { primaryKey, unsafe: true })
  await store.ready()
  const named = []
  const addNamed = async (s, nsLabel, name) => {
    const core = s.get({ name })
    await core.ready()
    const kp = await s.createKeyPair(name)
    named.push({
      namespace: nsLabel,
      ns: hex(s.ns),
      name,
      publicKey: hex(kp.publicKey),
      secretKey: hex(kp.secretKey),
      key: hex(core.key),
      discoveryKey: hex(core.discoveryKey),
      manifest: hex(Verifier.encodeManifest(core.manifest))
    })
  }
  for (const name of ['db', 'a', 'profile', 'ünïcode']) await addNamed(store, null, name)
  const x = store.namespace('x')
  await addNamed(x, ['x'], 'db')
  const xy = x.namespace('y')
  await addNamed(xy, ['x', 'y'], 'db')
  out.corestore = { primaryKey: hex(primaryKey), cores: named }
  await store.close()

  // --- replication capabilities ----------------------------------------------------------
  const capKey = b4a.from('59f3f0785d5bfd68401e22a5d5705057a8988b7ab959fb4d6c07b0aa143e22f2', 'hex')
  out.caps = [0x17, 0x5a].map((byte) => {
    const handshakeHash = b4a.alloc(64, byte)
    return {
      key: hex(capKey),
      handshakeHash: hex(handshakeHash),
      initiator: hex(caps.replicate(true, capKey, handshakeHash)),
      responder: hex(caps.replicate(false, capKey, handshakeHash))
    }
  })

  process.stdout.write(JSON.stringify(out, null, 2) + '\n')
}

main()
  .catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(() => {
    for (const d of tmpdirs) fs.rmSync(d, { recursive: true, force: true })
  })
