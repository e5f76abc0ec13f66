// Golden vectors for hyperlobby.wire.protomux: two real Protomux 3.12.1 instances ("a" and "b")
// joined by an in-memory message duplex. Each scenario is a list of steps (open, pair, send, cork,
// close, flush, inject...) that the Python test replays on two Python muxes; the JSON records
// every frame each side wrote (in order) and every channel event each side saw.
// Output: interop/vectors/protomux.json (regenerate: node vectors/protomux.js > vectors/protomux.json).
'use strict'

const { EventEmitter } = require('events')
const crypto = require('crypto')
const Protomux = require('protomux')
const c = require('compact-encoding')
const b4a = require('b4a')

const hex = (b) => b4a.toString(b, 'hex')
const tick = () => new Promise((resolve) => setImmediate(resolve))
const BIG = 65536 // frames larger than this are recorded by length and sha256

function frameRecord(from, buf) {
  if (buf.byteLength > BIG) {
    return { from, len: buf.byteLength, sha256: crypto.createHash('sha256').update(buf).digest('hex') }
  }
  return { from, hex: hex(buf) }
}

// A message-oriented duplex: write() queues the frame for the peer; "flush" delivers it.
class FakeStream extends EventEmitter {
  constructor(side, log) {
    super()
    this.side = side
    this.log = log
    this.userData = null
    this.destroyed = false
    this.queue = []
  }

  write(buf) {
    const copy = b4a.from(buf)
    this.log.frames.push(frameRecord(this.side, copy))
    this.queue.push(copy)
    return true
  }

  pause() {}
  resume() {}
  end() {}

  destroy(err) {
    if (this.destroyed) return
    this.destroyed = true
    this.log.events.push({ side: this.side, ev: 'destroy' })
    this.emit('close')
  }
}

function makeSide(side, log) {
  const stream = new FakeStream(side, log)
  const mux = new Protomux(stream)
  return { side, stream, mux, channels: new Map(), pairCounts: new Map() }
}

function createChannel(s, log, name, spec) {
  const messages = []
  for (let t = 0; t < (spec.messages ?? 1); t++) {
    messages.push({
      encoding: c.raw,
      onmessage(body) {
        log.events.push({ side: s.side, ev: 'message', ch: name, type: t, body: hex(body) })
      }
    })
  }
  const ch = s.mux.createChannel({
    protocol: spec.protocol,
    aliases: spec.aliases || [],
    id: spec.id ? b4a.from(spec.id, 'hex') : null,
    handshake: c.raw,
    messages,
    onopen(handshake) {
      log.events.push({ side: s.side, ev: 'open', ch: name, handshake: hex(handshake) })
    },
    onclose(isRemote) {
      log.events.push({ side: s.side, ev: 'close', ch: name, remote: isRemote })
    }
  })
  if (ch === null) throw new Error('createChannel returned null for ' + name)
  s.channels.set(name, ch)
  ch.open(b4a.from(spec.handshake || '', 'hex'))
  return ch
}

function body(step) {
  if (step.fill) return b4a.alloc(step.fill.length, step.fill.byte)
  return b4a.from(step.body || '', 'hex')
}

async function run(steps) {
  const log = { frames: [], events: [] }
  const sides = { a: makeSide('a', log), b: makeSide('b', log) }
  const other = (x) => (x === 'a' ? sides.b : sides.a)

  for (const step of steps) {
    const s = sides[step.side]
    switch (step.op) {
      case 'open':
        createChannel(s, log, step.ch, step)
        break
      case 'pair':
        s.mux.pair({ protocol: step.protocol, id: step.id ? b4a.from(step.id, 'hex') : null }, async (id) => {
          if (step.answer !== 'accept') return
          const n = (s.pairCounts.get(step.ch) || 0) + 1
          s.pairCounts.set(step.ch, n)
          const name = n === 1 ? step.ch : step.ch + '#' + n
          createChannel(s, log, name, { ...step, id: id ? hex(id) : null })
        })
        break
      case 'send':
        s.channels.get(step.ch).messages[step.type].send(body(step))
        break
      case 'cork':
        s.mux.cork()
        break
      case 'uncork':
        s.mux.uncork()
        break
      case 'close':
        s.channels.get(step.ch).close()
        break
      case 'inject':
        if (!s.stream.destroyed) s.stream.emit('data', b4a.from(step.hex, 'hex'))
        await tick()
        break
      case 'flush': {
        // deliver frames one at a time, letting the receiver settle between frames
        let progress = true
        while (progress) {
          progress = false
          for (const x of ['a', 'b']) {
            const from = sides[x]
            if (from.stream.queue.length === 0) continue
            const frame = from.stream.queue.shift()
            const to = other(x)
            if (!to.stream.destroyed) to.stream.emit('data', frame)
            await tick()
            progress = true
          }
        }
        break
      }
      default:
        throw new Error('unknown op ' + step.op)
    }
  }
  await tick()
  return log
}

const DK = 'a5'.repeat(32)
const ECHO = { protocol: 'echo', messages: 1 }
const flush = { op: 'flush' }

const scenarios = {
  basic_echo: [
    { op: 'pair', side: 'b', protocol: 'echo', answer: 'accept', ch: 'e', messages: 1 },
    { op: 'open', side: 'a', ch: 'e', ...ECHO },
    flush,
    { op: 'send', side: 'a', ch: 'e', type: 0, body: '026869' },
    { op: 'send', side: 'b', ch: 'e', type: 0, body: '02796f' },
    flush,
    { op: 'close', side: 'a', ch: 'e' },
    flush
  ],
  crossing_opens_with_handshakes: [
    { op: 'open', side: 'a', ch: 'x', protocol: 'hypercore/alpha', aliases: ['hypercore'], id: DK, handshake: '01' + '3c'.repeat(32), messages: 10 },
    { op: 'open', side: 'b', ch: 'x', protocol: 'hypercore', aliases: ['hypercore/alpha'], id: DK, handshake: '01' + '7e'.repeat(32), messages: 10 },
    { op: 'send', side: 'a', ch: 'x', type: 0, body: '07000000' },
    flush,
    { op: 'send', side: 'b', ch: 'x', type: 9, body: '08' + hex(b4a.from('hyperbee')) + '020a00' },
    flush
  ],
  reject_then_reuse: [
    { op: 'open', side: 'a', ch: 'n1', protocol: 'nobody', id: '0102', messages: 1 },
    { op: 'open', side: 'a', ch: 'n2', protocol: 'nobody', id: '0304', messages: 1 },
    { op: 'send', side: 'a', ch: 'n1', type: 0, body: 'aa' },
    flush,
    { op: 'open', side: 'a', ch: 'n3', protocol: 'nobody', messages: 1 },
    { op: 'open', side: 'a', ch: 'n4', protocol: 'other', messages: 1 },
    { op: 'open', side: 'a', ch: 'n5', protocol: 'third', messages: 1 },
    flush
  ],
  decline_drops_early_messages: [
    { op: 'pair', side: 'b', protocol: 'maybe', answer: 'decline', ch: 'm' },
    { op: 'open', side: 'a', ch: 'm', protocol: 'maybe', id: '99', messages: 1 },
    { op: 'send', side: 'a', ch: 'm', type: 0, body: '01' },
    { op: 'send', side: 'a', ch: 'm', type: 0, body: '02' },
    flush,
    { op: 'open', side: 'a', ch: 'm2', protocol: 'maybe', id: '99', messages: 1 },
    flush
  ],
  early_messages_buffered_until_accept: [
    { op: 'pair', side: 'b', protocol: 'early', answer: 'accept', ch: 'e', messages: 2, handshake: 'beef' },
    { op: 'open', side: 'a', ch: 'e', protocol: 'early', handshake: 'cafe', messages: 2 },
    { op: 'send', side: 'a', ch: 'e', type: 0, body: '0a' },
    { op: 'send', side: 'a', ch: 'e', type: 1, body: '0b' },
    { op: 'send', side: 'a', ch: 'e', type: 0, fill: { length: 300, byte: 7 } },
    flush,
    { op: 'send', side: 'b', ch: 'e', type: 1, body: '' },
    flush
  ],
  cork_mixed_batch: [
    { op: 'pair', side: 'b', protocol: 'p', answer: 'accept', ch: 'p', messages: 3 },
    { op: 'open', side: 'b', ch: 'q', protocol: 'q', messages: 3 },
    { op: 'open', side: 'a', ch: 'q', protocol: 'q', messages: 3 },
    { op: 'open', side: 'a', ch: 'p', protocol: 'p', id: '01', messages: 3 },
    flush,
    { op: 'cork', side: 'a' },
    { op: 'send', side: 'a', ch: 'q', type: 0, body: '78' },
    { op: 'send', side: 'a', ch: 'q', type: 1, body: '79' },
    { op: 'send', side: 'a', ch: 'p', type: 2, fill: { length: 260, byte: 1 } },
    { op: 'send', side: 'a', ch: 'q', type: 0, body: '7a' },
    { op: 'cork', side: 'a' },
    { op: 'close', side: 'a', ch: 'p' },
    { op: 'open', side: 'a', ch: 'r', protocol: 'r', messages: 1 },
    { op: 'uncork', side: 'a' },
    { op: 'send', side: 'a', ch: 'q', type: 2, body: '' },
    { op: 'uncork', side: 'a' },
    flush,
    { op: 'cork', side: 'b' },
    { op: 'uncork', side: 'b' },
    { op: 'cork', side: 'b' },
    { op: 'send', side: 'b', ch: 'q', type: 0, body: '01' },
    { op: 'uncork', side: 'b' },
    flush
  ],
  id_reuse_after_close: [
    { op: 'pair', side: 'b', protocol: 'r', answer: 'accept', ch: 'r', messages: 1 },
    { op: 'open', side: 'a', ch: 'c1', protocol: 'r', id: '01', messages: 1 },
    { op: 'open', side: 'a', ch: 'c2', protocol: 'r', id: '02', messages: 1 },
    { op: 'open', side: 'a', ch: 'c3', protocol: 'r', id: '03', messages: 1 },
    flush,
    { op: 'close', side: 'a', ch: 'c2' },
    { op: 'open', side: 'a', ch: 'c4', protocol: 'r', id: '04', messages: 1 },
    flush,
    { op: 'close', side: 'a', ch: 'c1' },
    { op: 'close', side: 'a', ch: 'c3' },
    { op: 'open', side: 'a', ch: 'c5', protocol: 'r', id: '05', messages: 1 },
    { op: 'send', side: 'a', ch: 'c5', type: 0, body: '05' },
    flush,
    { op: 'close', side: 'b', ch: 'r#4' },
    { op: 'send', side: 'a', ch: 'c4', type: 0, body: '04' },
    flush,
    { op: 'open', side: 'b', ch: 'b1', protocol: 'r', id: '06', messages: 1 },
    { op: 'open', side: 'a', ch: 'c6', protocol: 'r', id: '06', messages: 1 },
    flush
  ],
  close_before_ack: [
    { op: 'open', side: 'a', ch: 'l', protocol: 'lazy', messages: 1 },
    { op: 'close', side: 'a', ch: 'l' },
    { op: 'open', side: 'b', ch: 'l', protocol: 'lazy', messages: 1 },
    { op: 'open', side: 'a', ch: 'l2', protocol: 'lazy2', messages: 1 },
    flush,
    { op: 'open', side: 'a', ch: 'l3', protocol: 'lazy3', messages: 1 },
    flush
  ],
  message_types_and_sizes: [
    { op: 'open', side: 'a', ch: 't', protocol: 'types', messages: 3 },
    { op: 'open', side: 'b', ch: 't', protocol: 'types', messages: 1 },
    flush,
    { op: 'send', side: 'a', ch: 't', type: 0, fill: { length: 70000, byte: 9 } },
    { op: 'send', side: 'a', ch: 't', type: 2, body: '02' },
    { op: 'send', side: 'a', ch: 't', type: 0, body: '' },
    flush
  ],
  huge_batch_split: [
    { op: 'open', side: 'a', ch: 'h', protocol: 'huge', messages: 1 },
    { op: 'open', side: 'b', ch: 'h', protocol: 'huge', messages: 1 },
    flush,
    { op: 'cork', side: 'a' },
    { op: 'send', side: 'a', ch: 'h', type: 0, fill: { length: 3 * 1024 * 1024, byte: 1 } },
    { op: 'send', side: 'a', ch: 'h', type: 0, fill: { length: 3 * 1024 * 1024, byte: 2 } },
    { op: 'send', side: 'a', ch: 'h', type: 0, fill: { length: 3 * 1024 * 1024, byte: 3 } },
    { op: 'send', side: 'a', ch: 'h', type: 0, fill: { length: 3 * 1024 * 1024, byte: 4 } },
    { op: 'send', side: 'a', ch: 'h', type: 0, fill: { length: 8 * 1024 * 1024 - 20, byte: 5 } },
    { op: 'send', side: 'a', ch: 'h', type: 0, body: '06' },
    { op: 'uncork', side: 'a' },
    flush
  ],
  injected_ignorable_frames: [
    { op: 'open', side: 'a', ch: 'i', protocol: 'inj', messages: 2 },
    { op: 'open', side: 'b', ch: 'i', protocol: 'inj', messages: 2 },
    flush,
    { op: 'inject', side: 'b', hex: '' },
    { op: 'inject', side: 'b', hex: '0007ffff' },
    { op: 'inject', side: 'b', hex: '0500aa' },
    { op: 'inject', side: 'b', hex: '000300' },
    { op: 'inject', side: 'b', hex: '000309' },
    { op: 'inject', side: 'b', hex: '0109' },
    { op: 'inject', side: 'b', hex: '0101ee' },
    { op: 'inject', side: 'b', hex: '01fd0001' },
    { op: 'inject', side: 'b', hex: '000001' + '0200aa' + '0201bb' + '0005' + '0200cc' + '0000' + '020309' },
    { op: 'inject', side: 'b', hex: '000000' + '08' + '0001' + '0200dd' + '0201ee' },
    { op: 'inject', side: 'b', hex: '00000105' + '0001' },
    { op: 'inject', side: 'b', hex: '000001fd0200' + '0001' }
  ]
}

const fatal = {
  open_id_gap: '0001030165' + '00',
  open_id_zero: '0001000165' + '00',
  open_slot_taken: null, // filled below (needs an open first)
  reject_unknown: '000205',
  truncated_type: '05',
  truncated_open: '000103',
  truncated_batch_separator: '0000010200aa00',
  bad_uint64: '00ff0000000000000020',
  open_in_batch_bad: '00000005' + '0107016500'
}

for (const [name, frame] of Object.entries(fatal)) {
  const steps = [{ op: 'open', side: 'a', ch: 'f', protocol: 'fatal', messages: 1 }, { op: 'open', side: 'b', ch: 'f', protocol: 'fatal', messages: 1 }, flush]
  if (name === 'open_slot_taken') steps.push({ op: 'inject', side: 'b', hex: '0001010178' + '00' })
  else steps.push({ op: 'inject', side: 'b', hex: frame })
  steps.push({ op: 'inject', side: 'b', hex: '010000' })
  scenarios['fatal_' + name] = steps
}

async function main() {
  const out = {}
  for (const [name, steps] of Object.entries(scenarios)) {
    const log = await run(steps)
    out[name] = { steps, frames: log.frames, events: log.events }
  }
  process.stdout.write(JSON.stringify(out, null, 1) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
