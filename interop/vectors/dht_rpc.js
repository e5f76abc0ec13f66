// Golden vectors for hyperlobby.swarm.dht_rpc: dht-rpc's own IO layer encodes requests and
// responses (through fake sockets that capture the datagrams instead of sending them), decides
// which odd datagrams it accepts, derives node ids and tokens, and kademlia-routing-table picks
// closest nodes. Nothing here opens a socket.
// Output: interop/vectors/dht_rpc.json (regenerate: node vectors/dht_rpc.js > vectors/dht_rpc.json).
'use strict'

const IO = require('dht-rpc/lib/io')
const peer = require('dht-rpc/lib/peer')
const Table = require('kademlia-routing-table')
const NatSampler = require('nat-sampler')
const b4a = require('b4a')
const crypto = require('crypto')

const hex = (b) => (b === null || b === undefined ? null : b4a.toString(b, 'hex'))
const fill = (n, v) => b4a.alloc(n, v)
// deterministic pseudo-random bytes (sha256 chain) so the vectors are stable
const det = (label, n) => {
  let out = b4a.alloc(0)
  let i = 0
  while (out.length < n) out = b4a.concat([out, crypto.createHash('sha256').update(label + ':' + i++).digest()])
  return out.subarray(0, n)
}

function fakeUdx() {
  return { watchNetworkInterfaces: () => ({ on() {}, destroy() {} }) }
}

function makeSocket(sent) {
  return { trySend: (buf, port, host) => sent.push({ buf: b4a.from(buf), port, host }) }
}

function makeIO({ ephemeral = true, tableId = det('table', 32), nodes = [] } = {}) {
  const table = new Table(tableId)
  for (const n of nodes) table.add({ id: peer.id(n.host, n.port), host: n.host, port: n.port })
  const got = { requests: [] }
  const io = new IO(table, fakeUdx(), { onrequest: (req) => got.requests.push(req) })
  const sent = []
  const socket = makeSocket(sent)
  io.serverSocket = socket
  io.clientSocket = socket
  io.firewalled = false
  io.ephemeral = ephemeral
  io._secrets = [det('secret0', 32), det('secret1', 32)]
  return { io, sent, socket, got, table }
}

const NODES = []
for (let i = 0; i < 30; i++) NODES.push({ host: `127.0.${i >> 3}.${(i * 37) % 256}`, port: 1000 + i * 1111 })

const requests = []
const responses = []

const requestCases = [
  { name: 'ping', internal: true, command: 0, to: { host: '127.0.0.1', port: 49737 }, tid: 0 },
  { name: 'ping-persistent', ephemeral: false, internal: true, command: 0, to: { host: '10.1.2.3', port: 65535 }, tid: 65535 },
  { name: 'ping-nat', internal: true, command: 1, value: b4a.from([0x39, 0x30]), to: { host: '127.0.0.1', port: 1 }, tid: 7 },
  { name: 'find-node', internal: true, command: 2, target: det('target', 32), to: { host: '127.0.0.1', port: 20000 }, tid: 300 },
  { name: 'find-node-persistent', ephemeral: false, internal: true, command: 2, target: det('t2', 32), to: { host: '192.168.1.200', port: 443 }, tid: 4242 },
  { name: 'down-hint', internal: true, command: 3, value: b4a.from([127, 0, 0, 1, 0x10, 0x27]), to: { host: '127.0.0.1', port: 3000 }, tid: 9 },
  { name: 'delayed-ping', internal: true, command: 4, value: b4a.from([0xe8, 0x03, 0, 0]), to: { host: '127.0.0.1', port: 3001 }, tid: 10 },
  { name: 'user-with-token', command: 4, token: det('token', 32), target: det('t3', 32), value: b4a.from('announce me'), to: { host: '127.0.0.2', port: 5000 }, tid: 11 },
  { name: 'user-empty-value', command: 9, value: b4a.alloc(0), to: { host: '127.0.0.2', port: 5001 }, tid: 12 },
  { name: 'user-big-command', command: 70000, target: det('t4', 32), to: { host: '1.2.3.4', port: 80 }, tid: 13 },
  { name: 'user-command-253', command: 253, value: det('v', 300), to: { host: '255.255.255.255', port: 65535 }, tid: 14 },
  { name: 'all-fields', ephemeral: false, command: 5, token: det('tk', 32), target: det('tg', 32), value: det('val', 70000), to: { host: '8.8.4.4', port: 53 }, tid: 15 }
]

for (const t of requestCases) {
  const { io, socket, table } = makeIO({ ephemeral: t.ephemeral !== false })
  io._tid = t.tid
  const req = io.createRequest(
    { id: null, host: t.to.host, port: t.to.port },
    t.token || null,
    !!t.internal,
    t.command,
    t.target || null,
    t.value || null,
    null,
    0
  )
  const buf = req._encodeRequest(req.token, req.value, req.to, socket)
  requests.push({
    name: t.name,
    tid: t.tid,
    to: t.to,
    id: t.ephemeral === false ? hex(table.id) : null,
    token: hex(t.token || null),
    internal: !!t.internal,
    command: t.command,
    target: hex(t.target || null),
    value: hex(t.value || null),
    hex: hex(buf)
  })
  req.destroy()
}

// Responses: feed a request datagram into IO, let it reply through sendReply / reply / error.
const responseCases = [
  { name: 'pong', req: { command: 0, internal: true }, reply: { error: 0, token: false, closer: false } },
  { name: 'pong-persistent', ephemeral: false, req: { command: 0, internal: true }, reply: { error: 0, token: false, closer: false } },
  { name: 'find-node-reply', nodes: NODES, req: { command: 2, internal: true, target: det('ft', 32) }, reply: { error: 0, token: false, closer: true } },
  { name: 'find-node-reply-few', nodes: NODES.slice(0, 3), ephemeral: false, req: { command: 2, internal: true, target: det('ft2', 32) }, reply: { error: 0, token: false, closer: true } },
  { name: 'user-reply-token-value', nodes: NODES.slice(0, 5), req: { command: 7, target: det('ut', 32) }, reply: { error: 0, token: true, closer: true, value: b4a.from('hello') } },
  { name: 'unknown-command', req: { command: 8, target: det('ut2', 32) }, reply: { error: 1, token: false, closer: true } },
  { name: 'invalid-token', req: { command: 8 }, reply: { error: 2, token: true, closer: false } },
  { name: 'big-error-empty-value', req: { command: 8 }, reply: { error: 100000, token: false, closer: false, value: b4a.alloc(0) } }
]

for (const t of responseCases) {
  const { io, sent, socket, got } = makeIO({ ephemeral: t.ephemeral !== false, nodes: t.nodes || [] })
  const from = { host: '127.0.0.9', port: 40404 }
  // build the incoming request with a second IO so it is a genuine dht-rpc datagram
  const other = makeIO()
  other.io._tid = 777
  const oreq = other.io.createRequest(
    { id: null, host: '127.0.0.1', port: 50000 },
    null,
    !!t.req.internal,
    t.req.command,
    t.req.target || null,
    null,
    null,
    0
  )
  const inbound = oreq._encodeRequest(null, null, oreq.to, other.socket)
  oreq.destroy()
  io.onmessage(socket, inbound, from)
  const req = got.requests[0]
  req.sendReply(t.reply.error, t.reply.value || null, t.reply.token, t.reply.closer)
  const out = sent[sent.length - 1]
  const closer = t.reply.closer && req.target ? io.table.closest(req.target).map((n) => ({ host: n.host, port: n.port })) : []
  responses.push({
    name: t.name,
    request_hex: hex(inbound),
    from,
    tid: 777,
    to: from,
    id: t.ephemeral === false ? hex(io.table.id) : null,
    token: t.reply.token ? hex(io.token(from, 1)) : null,
    closer_nodes: closer,
    error: t.reply.error,
    value: hex(t.reply.value || null),
    hex: hex(out.buf),
    sent_to: { host: out.host, port: out.port }
  })
}

// Which raw datagrams dht-rpc's decoders accept (requests through onrequest, responses by tid).
function acceptsRequest(buf) {
  const { io, socket, got } = makeIO()
  io.onmessage(socket, buf, { host: '127.0.0.1', port: 1234 })
  if (got.requests.length === 0) return null
  const r = got.requests[0]
  return {
    tid: r.tid,
    to: { host: r.to.host, port: r.to.port },
    token: hex(r.token),
    internal: r.internal,
    command: r.command,
    target: hex(r.target),
    value: hex(r.value)
  }
}

function acceptsResponse(buf) {
  const { io, socket } = makeIO()
  let got = null
  const tid = buf.length >= 4 ? buf[2] | (buf[3] << 8) : 0
  io.inflight.push({
    tid,
    to: { host: '127.0.0.1', port: 1234 },
    sent: 1,
    session: null,
    _timeout: null,
    internal: false,
    command: 99,
    _timestamp: Date.now(),
    onresponse: (res) => {
      got = res
    }
  })
  io.stats.requests.active++
  io.onmessage(socket, buf, { host: '127.0.0.1', port: 1234 })
  if (got === null) return null
  return {
    tid: got.tid,
    to: { host: got.to.host, port: got.to.port },
    token: hex(got.token),
    closer_nodes: (got.closerNodes || []).map((n) => ({ host: n.host, port: n.port })),
    error: got.error,
    value: hex(got.value)
  }
}

const oddInputs = [
  '03',
  '0300',
  '030000000000000000',
  '0300000000000000000000',
  '03000100000000000000',
  '0304010002020202020300',
  '031001000202020203000005',
  '0310010002020202030000056869',
  '0310010002020202030000056869212121',
  '03fd0400000100020202020300' + '02',
  '03fe0000000000000000000000',
  '0300000000000000000000fd',
  '0300000000000000000000fd0001',
  '1300000000000000000000',
  '130000000000000000',
  '13040000000000000002' + '7f0000010100',
  '13040000000000000002' + '7f000001010002030405',
  '13040000000000000002' + '7f000001010002030405' + '0607',
  '13080000000000000000',
  '1308000000000000000005',
  '1308000000000000000000',
  '1310000000000000000003616263',
  '13100000000000000000036162',
  '13010000000000000000' + '00'.repeat(31),
  '13020000000000000000' + '11'.repeat(32),
  '13ff0000000000000000',
  '23000000000000000000',
  '04000000000000000000'
]
requests.push(...[])
for (const t of requests.slice(0, 4)) oddInputs.push(t.hex + 'deadbeef')
for (const t of responses.slice(0, 3)) oddInputs.push(t.hex + '00')

const decoding = oddInputs.map((h) => {
  const buf = b4a.from(h, 'hex')
  return { hex: h, request: buf[0] === 0x03 ? acceptsRequest(buf) : null, response: buf[0] === 0x13 ? acceptsResponse(buf) : null }
})

const ids = NODES.slice(0, 6).concat([{ host: '0.0.0.0', port: 0 }, { host: '255.255.255.255', port: 65535 }]).map((n) => ({
  host: n.host,
  port: n.port,
  id: hex(peer.id(n.host, n.port))
}))

const tokens = ['127.0.0.1', '10.0.0.1', '255.255.255.255'].map((host) => {
  const { io } = makeIO()
  return { host, secret0: hex(io._secrets[0]), secret1: hex(io._secrets[1]), token0: hex(io.token({ host }, 0)), token1: hex(io.token({ host }, 1)) }
})

// Routing table: which nodes closest() returns, in order, for several targets (k = 20 and 5).
const routing = []
for (const k of [20, 5]) {
  const tableId = det('rt-id-' + k, 32)
  const table = new Table(tableId, { k })
  const all = []
  for (let i = 0; i < 200; i++) {
    const n = { host: `10.${i >> 8}.${i & 255}.${(i * 7) & 255}`, port: 2000 + i }
    const node = { id: peer.id(n.host, n.port), host: n.host, port: n.port }
    all.push({ ...n, added: table.add(node) })
  }
  const targets = [tableId, det('rt-t1', 32), det('rt-t2', 32), fill(32, 0), fill(32, 0xff)]
  routing.push({
    k,
    id: hex(tableId),
    nodes: all,
    size: table.size,
    closest: targets.map((t) => ({ target: hex(t), nodes: table.closest(t).map((n) => `${n.host}:${n.port}`) }))
  })
}

// nat-sampler: the verdict (host, port, size) and returned hits after each sample.
const natSequences = []
const natSeqInputs = [
  Array.from({ length: 6 }, () => ['1.2.3.4', 1000]),
  [['1.2.3.4', 1000], ['1.2.3.4', 1001], ['1.2.3.4', 1002], ['1.2.3.4', 1003], ['1.2.3.4', 1004]],
  [['1.2.3.4', 1000], ['5.6.7.8', 1000], ['1.2.3.4', 1000], ['1.2.3.4', 1000], ['1.2.3.4', 1000]]
]
{
  // a long noisy one that wraps the ring several times
  let x = 7
  const seq = []
  for (let i = 0; i < 120; i++) {
    x = (x * 1103515245 + 12345) % 2147483648
    const r = x % 10
    const phase = i < 60 ? '9.9.9.9' : '8.8.8.8'
    seq.push(r < 6 ? [phase, 4000] : r < 8 ? [phase, 4000 + (x % 5)] : ['7.7.7.' + (x % 3), 4000])
  }
  natSeqInputs.push(seq)
}
for (const seq of natSeqInputs) {
  const s = new NatSampler()
  natSequences.push(seq.map(([host, port]) => {
    const hits = s.add(host, port)
    return { host, port, hits, verdict: [s.host, s.port, s.size] }
  }))
}

process.stdout.write(JSON.stringify({ requests, responses, decoding, ids, tokens, routing, nat: natSequences }, null, 1) + '\n')
