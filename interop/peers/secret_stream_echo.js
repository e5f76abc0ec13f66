// A JS @hyperswarm/secret-stream peer for hyperlobby's interop tests (tests/test_secret_stream_interop.py).
//
//   node peers/secret_stream_echo.js server <seedHex> [keepAliveMs]
//     Listens on 127.0.0.1 (random port) and prints one JSON line {port, publicKey}. Every
//     connection is a responder stream that echoes each message back; for each one a line
//     {event: "handshake", remotePublicKey, handshakeHash} and, when it ends, {event: "closed",
//     messages, error} is printed. Exits when stdin closes.
//
//   node peers/secret_stream_echo.js client <port> <seedHex> <sizesJson>
//     Connects as initiator, writes one message per size (byte j of message i is
//     (j*31 + i*7) & 255), expects each to be echoed back unchanged, prints one JSON line with
//     the outcome and exits (status 1 on any mismatch or error).
'use strict'

const net = require('net')
const NoiseSecretStream = require('@hyperswarm/secret-stream')

const hex = (b) => Buffer.from(b).toString('hex')
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

function payload(size, i) {
  const b = Buffer.alloc(size)
  for (let j = 0; j < size; j++) b[j] = (j * 31 + i * 7) & 255
  return b
}

function server(seedHex, keepAliveMs) {
  const keyPair = NoiseSecretStream.keyPair(Buffer.from(seedHex, 'hex'))
  const srv = net.createServer((socket) => {
    const s = new NoiseSecretStream(false, socket, { keyPair, keepAlive: keepAliveMs })
    let messages = 0
    let error = null
    s.on('handshake', () => {
      say({ event: 'handshake', remotePublicKey: hex(s.remotePublicKey), handshakeHash: hex(s.handshakeHash) })
    })
    s.on('data', (m) => {
      messages++
      s.write(m)
    })
    s.on('end', () => s.end())
    s.on('error', (err) => {
      error = err.message
    })
    s.on('close', () => say({ event: 'closed', messages, error }))
  })
  srv.listen(0, '127.0.0.1', () => {
    say({ port: srv.address().port, publicKey: hex(keyPair.publicKey) })
  })
  process.stdin.on('end', () => process.exit(0))
  process.stdin.resume()
}

function client(port, seedHex, sizes) {
  const keyPair = NoiseSecretStream.keyPair(Buffer.from(seedHex, 'hex'))
  const socket = net.connect(port, '127.0.0.1')
  const s = new NoiseSecretStream(true, socket, { keyPair })
  const timer = setTimeout(() => fail('timed out'), 30000)
  let next = 0

  function fail(msg) {
    say({ ok: false, error: msg, received: next })
    process.exit(1)
  }

  s.on('error', (err) => fail(err.message))
  s.on('data', (m) => {
    const want = payload(sizes[next], next)
    if (!want.equals(m)) fail(`echo ${next} differs (got ${m.byteLength} bytes, want ${want.byteLength})`)
    next++
    if (next === sizes.length) {
      clearTimeout(timer)
      say({
        ok: true,
        received: next,
        publicKey: hex(s.publicKey),
        remotePublicKey: hex(s.remotePublicKey),
        handshakeHash: hex(s.handshakeHash)
      })
      s.end()
    }
  })
  s.on('close', () => {
    if (next !== sizes.length) fail('closed early')
    process.exit(0)
  })
  sizes.forEach((size, i) => s.write(payload(size, i)))
}

const [mode, ...args] = process.argv.slice(2)
if (mode === 'server') server(args[0], Number(args[1] || 0))
else if (mode === 'client') client(Number(args[0]), args[1], JSON.parse(args[2]))
else {
  console.error('usage: secret_stream_echo.js server <seedHex> [keepAliveMs] | client <port> <seedHex> <sizesJson>')
  process.exit(2)
}
