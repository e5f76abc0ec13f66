'use strict'
// JS side of bench/bench_replication.py: replication throughput over loopback TCP.
//
//   node bench/replicate.js serve <dir> <count> <size>
//       create (or reopen) a core in <dir> holding <count> blocks of <size> bytes, listen on
//       127.0.0.1, print {"port", "key"} and serve until stdin closes.
//   node bench/replicate.js fetch <port> <keyhex> <dir>
//       connect, learn the length, download every block, print
//       {"blocks", "bytes", "seconds", "handshake_ms"} (seconds: connect -> all blocks stored;
//       handshake_ms: connect -> remote length known).

const net = require('net')
const Hypercore = require('hypercore')
const SecretStream = require('@hyperswarm/secret-stream')
const hcrypto = require('hypercore-crypto')

const HOST = '127.0.0.1'

function fill (i, size) {
  const b = Buffer.alloc(size)
  b.writeUInt32LE(i, 0)
  return b
}

async function serve (dir, count, size) {
  const core = new Hypercore(dir, { keyPair: hcrypto.keyPair(Buffer.alloc(32, 7)) })
  await core.ready()
  while (core.length < count) {
    const batch = []
    for (let i = core.length; i < Math.min(count, core.length + 256); i++) batch.push(fill(i, size))
    await core.append(batch)
  }
  const sockets = new Set()
  const server = net.createServer((socket) => {
    const stream = new SecretStream(false, socket)
    stream.on('error', () => {})
    socket.on('error', () => {})
    sockets.add(stream)
    stream.on('close', () => sockets.delete(stream))
    core.replicate(stream)
  })
  await new Promise((resolve) => server.listen(0, HOST, resolve))
  process.stdout.write(JSON.stringify({ port: server.address().port, key: core.key.toString('hex') }) + '\n')
  process.stdin.resume()
  process.stdin.on('end', async () => {
    for (const s of sockets) s.destroy()
    server.close()
    await core.close()
    process.exit(0)
  })
}

async function fetch (port, key, dir) {
  const core = new Hypercore(dir, Buffer.from(key, 'hex'))
  await core.ready()
  const t0 = process.hrtime.bigint()
  const socket = net.connect(port, HOST)
  const stream = new SecretStream(true, socket)
  stream.on('error', () => {})
  core.replicate(stream)
  if (core.peers.length === 0) await new Promise((resolve) => core.once('peer-add', resolve))
  await core.update({ wait: true })
  const t1 = process.hrtime.bigint()
  await core.download({ start: 0, end: core.length }).done()
  const t2 = process.hrtime.bigint()
  process.stdout.write(JSON.stringify({
    blocks: core.length,
    bytes: core.byteLength,
    seconds: Number(t2 - t0) / 1e9,
    handshake_ms: Number(t1 - t0) / 1e6
  }) + '\n')
  stream.destroy()
  await core.close()
  process.exit(0)
}

const [mode, ...args] = process.argv.slice(2)
const run = mode === 'serve'
  ? serve(args[0], Number(args[1]), Number(args[2]))
  : fetch(Number(args[0]), args[1], args[2])
run.catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
