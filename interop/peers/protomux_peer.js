// A live JS Protomux 3.12.1 peer for hyperlobby's protomux interop test.
// stdin/stdout carry messages framed as u24le(length) ‖ kind ‖ payload:
//   kind 0: one protomux frame (both directions)
//   kind 1: a JSON command from Python, or a JSON reply to the "sync" command
// Commands: pair, open, send, cork, uncork, close, sync. Every channel event is logged and
// returned (and cleared) by "sync", after the event loop has settled.
'use strict'

const { EventEmitter } = require('events')
const Protomux = require('protomux')
const c = require('compact-encoding')
const b4a = require('b4a')
const m = require('hypercore/lib/messages.js')

const hex = (b) => b4a.toString(b, 'hex')
const tick = () => new Promise((resolve) => setImmediate(resolve))
const HYPERCORE = ['sync', 'request', 'cancel', 'data', 'noData', 'want', 'unwant', 'bitfield', 'range', 'extension']

function out(kind, payload) {
  const head = b4a.alloc(4)
  head.writeUIntLE(payload.byteLength + 1, 0, 3)
  head[3] = kind
  process.stdout.write(b4a.concat([head, payload]))
}

function toJSON(v) {
  if (b4a.isBuffer(v)) return hex(v)
  if (v instanceof Uint32Array) return Array.from(v)
  if (Array.isArray(v)) return v.map(toJSON)
  if (v && typeof v === 'object') {
    const o = {}
    for (const k of Object.keys(v)) o[k] = toJSON(v[k])
    return o
  }
  return v
}

class Pipe extends EventEmitter {
  constructor() {
    super()
    this.userData = null
    this.destroyed = false
  }

  write(buf) {
    out(0, b4a.from(buf))
    return true
  }

  pause() {}
  resume() {}
  end() {}
  destroy(err) {
    if (this.destroyed) return
    this.destroyed = true
    log.push({ ev: 'destroy', error: err ? err.message : null })
    this.emit('close')
  }
}

const log = []
const stream = new Pipe()
const mux = new Protomux(stream)
const channels = new Map()
const pairCounts = new Map()

function create(name, spec) {
  const hypercore = spec.protocol === 'hypercore/alpha'
  const messages = []
  const count = hypercore ? 10 : spec.messages || 1
  for (let t = 0; t < count; t++) {
    messages.push({
      encoding: hypercore ? m.wire[HYPERCORE[t]] : c.raw,
      onmessage(msg) {
        log.push({ ev: 'message', ch: name, type: t, body: hypercore ? toJSON(msg) : hex(msg) })
      }
    })
  }
  const ch = mux.createChannel({
    protocol: spec.protocol,
    aliases: hypercore ? ['hypercore'] : [],
    id: spec.id ? b4a.from(spec.id, 'hex') : null,
    handshake: hypercore ? m.wire.handshake : c.raw,
    messages,
    onopen(handshake) {
      log.push({ ev: 'open', ch: name, handshake: toJSON(handshake) })
    },
    onclose(isRemote) {
      log.push({ ev: 'close', ch: name, remote: isRemote })
    }
  })
  if (ch === null) {
    log.push({ ev: 'create-failed', ch: name })
    return
  }
  channels.set(name, ch)
  const hs = hypercore ? { seeks: true, capability: b4a.from(spec.capability, 'hex') } : b4a.from(spec.handshake || '', 'hex')
  ch.open(hs)
}

function payload(cmd) {
  if (cmd.value) return fromJSON(cmd.value)
  return b4a.from(cmd.body || '', 'hex')
}

function fromJSON(v) {
  // hypercore message values arrive with buffers as { hex: '...' } and bitfields as { u32: [...] }
  if (Array.isArray(v)) return v.map(fromJSON)
  if (v && typeof v === 'object') {
    if (typeof v.hex === 'string' && Object.keys(v).length === 1) return b4a.from(v.hex, 'hex')
    if (Array.isArray(v.u32)) return new Uint32Array(v.u32)
    const o = {}
    for (const k of Object.keys(v)) o[k] = fromJSON(v[k])
    return o
  }
  return v
}

async function command(cmd) {
  switch (cmd.op) {
    case 'pair':
      mux.pair({ protocol: cmd.protocol }, async (id) => {
        if (!cmd.accept) return
        const n = (pairCounts.get(cmd.protocol) || 0) + 1
        pairCounts.set(cmd.protocol, n)
        create(cmd.protocol + '#' + n, { ...cmd, id: id ? hex(id) : null })
      })
      break
    case 'open':
      create(cmd.name, cmd)
      break
    case 'send':
      channels.get(cmd.name).messages[cmd.type].send(payload(cmd))
      break
    case 'cork':
      mux.cork()
      break
    case 'uncork':
      mux.uncork()
      break
    case 'close':
      channels.get(cmd.name).close()
      break
    case 'sync':
      await tick()
      await tick()
      out(1, b4a.from(JSON.stringify({ sync: cmd.n, events: log.splice(0) })))
      break
    default:
      throw new Error('unknown command ' + cmd.op)
  }
}

let buffered = b4a.alloc(0)
let chain = Promise.resolve()

process.stdin.on('data', (data) => {
  buffered = b4a.concat([buffered, data])
  while (buffered.byteLength >= 3) {
    const len = buffered.readUIntLE(0, 3)
    if (buffered.byteLength < 3 + len) break
    const kind = buffered[3]
    const body = buffered.subarray(4, 3 + len)
    buffered = buffered.subarray(3 + len)
    if (kind === 0) {
      const frame = b4a.from(body)
      chain = chain.then(() => {
        if (!stream.destroyed) stream.emit('data', frame)
      })
    } else {
      const cmd = JSON.parse(b4a.toString(body))
      chain = chain.then(() => command(cmd))
    }
  }
})

process.stdin.on('end', () => process.exit(0))
