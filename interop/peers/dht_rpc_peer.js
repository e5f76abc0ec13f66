// A small JS dht-rpc network on 127.0.0.1 for hyperlobby's DHT interop tests
// (tests/test_dht_rpc_interop.py).
//
//   node peers/dht_rpc_peer.js <count> [--adaptive] [--only-extra] [extraBootstrap host:port ...]
//
// Starts a dht-rpc bootstrapper on a free 127.0.0.1 port and <count> persistent nodes that
// bootstrap from it (plus any extra bootstrap addresses given, which must be 127.0.0.1).
// --adaptive makes the <count> nodes plain `new DHT()` nodes (ephemeral, firewalled until
// their own PING_NAT probes say otherwise), as hyperswarm clients start; --only-extra makes
// them bootstrap only from the extra addresses. Every
// socket is bound to 127.0.0.1 and no default bootstrap exists in dht-rpc, so nothing leaves
// loopback. Prints {ready, bootstrap, nodes: [{port, id}]} once all are bootstrapped, then
// serves one JSON command per stdin line, answering with one JSON line:
//
//   {cmd: "table"}                                  every node's routing table (host:port list)
//   {cmd: "find", from, target}                     findNode from node #from (0 = bootstrapper)
//   {cmd: "ping", from, host, port}                 ping, answers {id, to}
//   {cmd: "request", from, host, port, command, target?, value?, token?}
//   {cmd: "bootstrap", from}                        re-run a node's self lookup (refresh)
//   {cmd: "network", from, persistent}              run dht-rpc's own network-state check now
//                                                   (PING_NAT firewall probe; persistent: also
//                                                   take an id) instead of waiting ~20 min
//   {cmd: "quit"}
//
// Every node answers user command 42 with "js:" + value. Gives up after 60 s.
'use strict'

const dgram = require('dgram')
const readline = require('readline')
const DHT = require('dht-rpc')
const b4a = require('b4a')

const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const hex = (b) => (b ? b4a.toString(b, 'hex') : null)
const deadline = setTimeout(() => {
  say({ event: 'timeout' })
  process.exit(3)
}, 60000)

function freePort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4')
    s.on('error', reject)
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function loopbackOnly(addr) {
  if (!addr.startsWith('127.')) throw new Error('refusing non-loopback bootstrap ' + addr)
  return addr
}

function serve(dht) {
  dht.on('request', (req) => {
    if (req.command !== 42) return req.error(DHT.ERROR_UNKNOWN_COMMAND)
    req.reply(b4a.concat([b4a.from('js:'), req.value || b4a.alloc(0)]))
  })
}

async function main() {
  const count = Number(process.argv[2] || 4)
  const flags = process.argv.slice(3).filter((a) => a.startsWith('--'))
  const extra = process.argv
    .slice(3)
    .filter((a) => !a.startsWith('--'))
    .map(loopbackOnly)
  const adaptive = flags.includes('--adaptive')
  const onlyExtra = flags.includes('--only-extra')
  const port = await freePort()
  const boot = DHT.bootstrapper(port, '127.0.0.1', { host: '127.0.0.1' })
  serve(boot)
  await boot.fullyBootstrapped()
  const nodes = [boot]
  for (let i = 0; i < count; i++) {
    const bootstrap = onlyExtra ? extra : ['127.0.0.1:' + port, ...extra]
    const dht = new DHT(
      adaptive
        ? { bootstrap, host: '127.0.0.1' }
        : { bootstrap, host: '127.0.0.1', ephemeral: false, firewalled: false }
    )
    serve(dht)
    await dht.fullyBootstrapped()
    nodes.push(dht)
  }
  say({
    ready: true,
    bootstrap: port,
    nodes: nodes.map((n) => ({ port: n.address().port, id: hex(n.id), ephemeral: n.ephemeral, firewalled: n.firewalled }))
  })

  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    if (!line.trim()) continue
    const m = JSON.parse(line)
    try {
      if (m.cmd === 'quit') break
      else if (m.cmd === 'table') {
        say({ tables: nodes.map((n) => n.table.toArray().map((x) => `${x.host}:${x.port}`)) })
      } else if (m.cmd === 'find') {
        const q = nodes[m.from].findNode(b4a.from(m.target, 'hex'))
        await q.finished()
        say({ closest: q.closestReplies.map((r) => ({ host: r.from.host, port: r.from.port, id: hex(r.from.id) })) })
      } else if (m.cmd === 'ping') {
        const res = await nodes[m.from].ping({ host: loopbackOnly(m.host), port: m.port })
        say({ id: hex(res.from.id), to: res.to, error: res.error })
      } else if (m.cmd === 'request') {
        const res = await nodes[m.from].request(
          {
            command: m.command,
            target: m.target ? b4a.from(m.target, 'hex') : null,
            value: m.value ? b4a.from(m.value, 'hex') : null,
            token: m.token ? b4a.from(m.token, 'hex') : null
          },
          { host: loopbackOnly(m.host), port: m.port }
        )
        say({ id: hex(res.from.id), error: res.error, value: hex(res.value), token: hex(res.token), closer: (res.closerNodes || []).map((x) => `${x.host}:${x.port}`) })
      } else if (m.cmd === 'network') {
        const node = nodes[m.from]
        const changed = await node._updateNetworkState(!m.persistent)
        if (!node.ephemeral) await node._backgroundQuery(node.table.id).finished()
        say({ changed, firewalled: node.firewalled, ephemeral: node.ephemeral, id: hex(node.id), port: node.address().port })
      } else if (m.cmd === 'bootstrap') {
        await nodes[m.from]._backgroundQuery(nodes[m.from].table.id).finished()
        say({ ok: true })
      } else {
        say({ error: 'unknown cmd' })
      }
    } catch (err) {
      say({ error: String(err && err.message) })
    }
  }
  await Promise.all(nodes.map((n) => n.destroy()))
  clearTimeout(deadline)
  process.exit(0)
}

main().catch((err) => {
  say({ error: String(err && err.stack) })
  process.exit(1)
})
