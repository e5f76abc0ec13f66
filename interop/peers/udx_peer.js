// A udx-native peer for hyperlobby's UDX interop tests and bench (tests/test_udx_interop.py).
//
//   node peers/udx_peer.js <mode> [args...]
//
// Every mode except `bench` binds a UDX socket on 127.0.0.1, creates one stream with a random
// id and prints one JSON line {port, id}. It then reads one JSON line {remoteId, port} from
// stdin, connects the stream to it, prints {event: "connected"} and runs the mode:
//
//   echo                 writes back every byte received; ends when the peer ends
//   source <bytes>       sends <bytes> random bytes then ends; also drains what arrives
//   sink                 counts and hashes what arrives; ends when the peer ends
//   message              echoes every stream message (unreliable datagram) back, until stdin ends
//   secret <init|resp> <seedHex>
//                        runs @hyperswarm/secret-stream over the UDX stream and echoes each message
//
// When the stream closes it prints {event: "closed", received, sha256, sent, sentSha256, error}
// and exits. `bench <bytes>` moves <bytes> between two udx-native streams in this process and
// prints {bytes, seconds}; `relaybench <bytes>` does the same through a third socket whose two
// streams relay to each other (stream.relayTo, what a blind relay does). Every mode gives up
// after 60 s.
'use strict'

const crypto = require('crypto')
const readline = require('readline')
const UDX = require('udx-native')

const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const deadline = setTimeout(() => {
  say({ event: 'timeout' })
  process.exit(3)
}, 60000)

function bench(total, relayed) {
  const u = new UDX()
  const a = u.createSocket()
  const b = u.createSocket()
  const r = u.createSocket()
  a.bind(0, '127.0.0.1')
  b.bind(0, '127.0.0.1')
  r.bind(0, '127.0.0.1')
  const s1 = u.createStream(1)
  const s2 = u.createStream(2)
  if (relayed) {
    const r1 = u.createStream(3)
    const r2 = u.createStream(4)
    r1.connect(r, 1, a.address().port, '127.0.0.1')
    r2.connect(r, 2, b.address().port, '127.0.0.1')
    r1.relayTo(r2)
    r2.relayTo(r1)
    s1.connect(a, 3, r.address().port, '127.0.0.1')
    s2.connect(b, 4, r.address().port, '127.0.0.1')
  } else {
    s1.connect(a, 2, b.address().port, '127.0.0.1')
    s2.connect(b, 1, a.address().port, '127.0.0.1')
  }
  const chunk = crypto.randomBytes(65536)
  let received = 0
  const started = process.hrtime.bigint()
  s2.on('data', (d) => {
    received += d.byteLength
  })
  s2.on('end', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    say({ bytes: received, seconds })
    s2.end()
  })
  s1.on('data', () => {})
  let left = total
  function pump() {
    while (left > 0) {
      const n = Math.min(left, chunk.byteLength)
      left -= n
      if (!s1.write(n === chunk.byteLength ? chunk : chunk.subarray(0, n))) return s1.once('drain', pump)
    }
    s1.end()
  }
  pump()
  let closed = 0
  const done = () => {
    if (++closed === 2) {
      clearTimeout(deadline)
      Promise.all([a.close(), b.close()]).then(() => process.exit(0)) // r: process exit
    }
  }
  s1.on('close', done)
  s2.on('close', done)
}

function peer(mode, args) {
  const u = new UDX()
  const socket = u.createSocket()
  socket.bind(0, '127.0.0.1')
  const id = crypto.randomBytes(4).readUInt32LE(0)
  const stream = u.createStream(id)
  const rxHash = crypto.createHash('sha256')
  const txHash = crypto.createHash('sha256')
  let received = 0
  let sent = 0
  let error = null

  stream.on('error', (err) => {
    error = err.message
  })
  stream.on('close', () => {
    say({
      event: 'closed',
      received,
      sha256: rxHash.digest('hex'),
      sent,
      sentSha256: txHash.digest('hex'),
      error
    })
    clearTimeout(deadline)
    socket.close().then(() => process.exit(0))
  })

  say({ port: socket.address().port, id })

  const rl = readline.createInterface({ input: process.stdin })
  rl.once('line', (line) => {
    const remote = JSON.parse(line)
    stream.connect(socket, remote.remoteId, remote.port, '127.0.0.1')
    // Only now does this socket accept the stream's packets: anything sent earlier is dropped
    // as an unknown stream, and a sender would wait out a retransmission timeout for it.
    say({ event: 'connected' })
    run(mode, args, stream)
  })
  process.stdin.on('end', () => {
    if (mode === 'message') stream.destroy()
  })

  function count(d) {
    received += d.byteLength
    rxHash.update(d)
  }

  function write(d) {
    sent += d.byteLength
    txHash.update(d)
    return stream.write(d)
  }

  function run(mode, args, stream) {
    if (mode === 'echo') {
      stream.on('data', (d) => {
        count(d)
        if (!write(d)) {
          stream.pause()
          stream.once('drain', () => stream.resume())
        }
      })
      stream.on('end', () => stream.end())
    } else if (mode === 'sink') {
      stream.on('data', count)
      stream.on('end', () => stream.end())
    } else if (mode === 'source') {
      stream.on('data', count)
      let left = Number(args[0])
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, 65536)
          left -= n
          if (!write(crypto.randomBytes(n))) return stream.once('drain', pump)
        }
        stream.end()
      }
      pump()
    } else if (mode === 'message') {
      stream.on('data', () => {})
      stream.on('message', (m) => {
        count(m)
        stream.trySend(m)
      })
    } else if (mode === 'secret') {
      const SecretStream = require('@hyperswarm/secret-stream')
      const keyPair = SecretStream.keyPair(Buffer.from(args[1], 'hex'))
      const s = new SecretStream(args[0] === 'init', stream, { keyPair })
      s.on('handshake', () => {
        say({
          event: 'handshake',
          remotePublicKey: s.remotePublicKey.toString('hex'),
          handshakeHash: s.handshakeHash.toString('hex')
        })
      })
      s.on('data', (m) => {
        count(m)
        sent += m.byteLength
        txHash.update(m)
        s.write(m)
      })
      s.on('end', () => s.end())
      s.on('error', (err) => {
        error = err.message
      })
    } else {
      console.error('unknown mode ' + mode)
      process.exit(2)
    }
  }
}

const [mode, ...args] = process.argv.slice(2)
if (mode === 'bench' || mode === 'relaybench') bench(Number(args[0]), mode === 'relaybench')
else if (mode) peer(mode, args)
else {
  console.error('usage: udx_peer.js echo|source <bytes>|sink|message|secret <init|resp> <seedHex>|bench <bytes>')
  process.exit(2)
}
