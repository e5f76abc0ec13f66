'use strict'
// A real JS hypercore peer for hyperlobby's interop tests, driven by JSON lines.
//
//   node peers/core_peer.js '<config json>'
//
// config.role = "serve": open (or create) the listed cores, listen on 127.0.0.1:config.port
//   (0 = any), replicate every core over every accepted connection, print
//   {"event":"listening","port":P,"cores":[{key,discoveryKey,length}]}.
// config.role = "fetch": connect to 127.0.0.1:config.port, replicate the listed cores (by key),
//   download what each asks for, print {"event":"done","cores":[{length, digests}]} and exit.
//
// Cores: {storage: dir, seed: hex32 (writer), key: hex (reader), compat: bool,
//         blocks: [hex...] appended at start when the core is new,
//         range: [start, end] (fetch: only these), until: L (fetch: wait for length >= L),
//         follow: L (fetch: after the first pass, print {"event":"synced","cores":[...]} once, then
//           fetch every block up to L as the writer appends it, printing
//           {"event":"block","core":i,"index":j,"digest":hex} for each, before "done")}
// config.role = "watch": connect to 127.0.0.1:config.port, replicate the listed cores (by key),
//   download everything live, print {"event":"watching","cores":[{key,discoveryKey,length,fork}]}
//   once each core has updated, then {"event":"truncate","core":i,"ancestors":a,"fork":f} and
//   {"event":"append","core":i,"length":n,"fork":f} as the core follows its writer.
// Fetch results also list `stored`: the indexes in [0, length) held locally when done (sparse
// fetches store only what they asked for).
//
// Commands on stdin (one JSON per line): {"cmd":"append","core":i,"blocks":[hex...]}
//   -> {"event":"appended","core":i,"length":n}; {"cmd":"truncate","core":i,"length":n}
//   -> {"event":"truncated","core":i,"length":n,"fork":f}; {"cmd":"report","core":i}
//   -> {"event":"report","core":i,"length":n,"fork":f,"digests":[...],"stored":[...]} (digests of
//   every block, fetched if missing; stored = indexes held before fetching); {"cmd":"exit"}.
// Every core also prints {"event":"conflict","core":i,"length":n,"fork":f} if it freezes because
// its writer signed two conflicting trees (hypercore logs that with console.log, which goes to
// stderr here so that stdout stays JSON lines).
// Only 127.0.0.1 is ever used.

const net = require('net')
const crypto = require('crypto')
const readline = require('readline')
const Hypercore = require('hypercore')
const SecretStream = require('@hyperswarm/secret-stream')
const hcrypto = require('hypercore-crypto')

const config = JSON.parse(process.argv[2])
console.log = (...args) => process.stderr.write(args.join(' ') + '\n')
const HOST = '127.0.0.1'

function out (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function digest (buf) {
  return crypto.createHash('sha256').update(buf).digest('hex')
}

async function openCore (spec) {
  const opts = { valueEncoding: 'binary' }
  if (spec.seed) opts.keyPair = hcrypto.keyPair(Buffer.from(spec.seed, 'hex'))
  if (spec.compat) opts.compat = true
  const core = spec.key
    ? new Hypercore(spec.storage, Buffer.from(spec.key, 'hex'), opts)
    : new Hypercore(spec.storage, opts)
  await core.ready()
  if (core.writable && core.length === 0 && spec.blocks && spec.blocks.length) {
    await core.append(spec.blocks.map((b) => Buffer.from(b, 'hex')))
  }
  return core
}

function describe (core) {
  return {
    key: core.key.toString('hex'),
    discoveryKey: core.discoveryKey.toString('hex'),
    length: core.length
  }
}

function replicateAll (cores, isInitiator, socket) {
  const stream = new SecretStream(isInitiator, socket)
  stream.on('error', () => {})
  socket.on('error', () => {})
  for (const core of cores) core.replicate(stream)
  return stream
}

async function serve (cores) {
  const connections = new Set()
  const server = net.createServer((socket) => {
    const stream = replicateAll(cores, false, socket)
    connections.add(stream)
    stream.on('close', () => connections.delete(stream))
  })
  await new Promise((resolve) => server.listen(config.port || 0, HOST, resolve))
  out({ event: 'listening', port: server.address().port, cores: cores.map(describe) })
  return async () => {
    for (const s of connections) s.destroy()
    server.close()
  }
}

async function fetch (cores) {
  const socket = net.connect(config.port, HOST)
  const stream = replicateAll(cores, true, socket)
  const results = []
  for (let i = 0; i < cores.length; i++) {
    const core = cores[i]
    const spec = config.cores[i]
    const until = spec.until || 0
    if (core.peers.length === 0) await new Promise((resolve) => core.once('peer-add', resolve))
    await core.update({ wait: true })
    while (core.length < until) await new Promise((resolve) => core.once('append', resolve))
    const start = spec.range ? spec.range[0] : 0
    const end = spec.range ? spec.range[1] : core.length
    if (end > start) await core.download({ start, end }).done()
    const digests = []
    for (let j = start; j < end; j++) digests.push(digest(await core.get(j)))
    results.push({ ...describe(core), start, end, digests, contiguousLength: core.contiguousLength })
  }
  if (config.cores.some((spec) => spec.follow)) {
    out({ event: 'synced', cores: results })
    for (let i = 0; i < cores.length; i++) {
      const core = cores[i]
      const follow = config.cores[i].follow || 0
      for (let j = results[i].end; j < follow; j++) {
        while (core.length <= j) await new Promise((resolve) => core.once('append', resolve))
        const d = digest(await core.get(j))
        results[i].digests.push(d)
        results[i].end = j + 1
        out({ event: 'block', core: i, index: j, digest: d })
      }
    }
  }
  for (let i = 0; i < cores.length; i++) {
    const stored = []
    for (let j = 0; j < cores[i].length; j++) if (await cores[i].has(j)) stored.push(j)
    Object.assign(results[i], describe(cores[i]), { stored, contiguousLength: cores[i].contiguousLength })
  }
  out({ event: 'done', cores: results })
  stream.destroy()
}

async function watch (cores) {
  const socket = net.connect(config.port, HOST)
  const stream = replicateAll(cores, true, socket)
  const described = []
  for (let i = 0; i < cores.length; i++) {
    const core = cores[i]
    core.on('truncate', (ancestors, fork) => out({ event: 'truncate', core: i, ancestors, fork }))
    core.on('append', () => out({ event: 'append', core: i, length: core.length, fork: core.fork }))
    if (core.peers.length === 0) await new Promise((resolve) => core.once('peer-add', resolve))
    await core.update({ wait: true })
    core.download({ start: 0, end: -1 })
    described.push({ ...describe(core), fork: core.fork })
  }
  out({ event: 'watching', cores: described })
  return async () => stream.destroy()
}

async function report (i) {
  const core = cores[i]
  const stored = []
  for (let j = 0; j < core.length; j++) if (await core.has(j)) stored.push(j)
  const digests = []
  for (let j = 0; j < core.length; j++) digests.push(digest(await core.get(j, { timeout: 15000 })))
  return { event: 'report', core: i, length: core.length, fork: core.fork, digests, stored }
}

const cores = []

async function main () {
  for (const spec of config.cores) cores.push(await openCore(spec))
  cores.forEach((core, i) => {
    core.on('conflict', (length, fork) => out({ event: 'conflict', core: i, length, fork }))
  })

  let stop = async () => {}
  if (config.role === 'serve') stop = await serve(cores)
  else if (config.role === 'fetch') await fetch(cores)
  else if (config.role === 'watch') stop = await watch(cores)
  else throw new Error('unknown role ' + config.role)

  if (config.role === 'fetch') {
    for (const core of cores) await core.close()
    // A big "done" line may still be queued for a slow pipe reader: exit only once it is out.
    await new Promise((resolve) => process.stdout.write('', resolve))
    process.exit(0)
  }

  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', async (line) => {
    const msg = JSON.parse(line)
    if (msg.cmd === 'append') {
      const core = cores[msg.core]
      await core.append(msg.blocks.map((b) => Buffer.from(b, 'hex')))
      out({ event: 'appended', core: msg.core, length: core.length })
    } else if (msg.cmd === 'truncate') {
      const core = cores[msg.core]
      await core.truncate(msg.length)
      out({ event: 'truncated', core: msg.core, length: core.length, fork: core.fork })
    } else if (msg.cmd === 'report') {
      try {
        out(await report(msg.core))
      } catch (err) {
        out({ event: 'report', core: msg.core, error: String(err && err.message) })
      }
    } else if (msg.cmd === 'exit') {
      await stop()
      for (const core of cores) await core.close()
      process.exit(0)
    }
  })
  rl.on('close', async () => {
    await stop()
    process.exit(0)
  })
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
