'use strict'
// A JS Hyperdrive client for hyperlobby's lobby interop test: it replicates drives from a Python
// node on 127.0.0.1 and lists their files. JSON lines.
//
//   node peers/lobby_reader.js '{"storage": dir, "connect": port}'
//
// Prints {"event":"ready"}. Commands on stdin, one JSON per line:
//   {"cmd":"ls","key":hex}  -> {"event":"files","key","version","files":{path: base64}}
//   {"cmd":"exit"}
// Only 127.0.0.1 is ever used.

const net = require('net')
const readline = require('readline')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const SecretStream = require('@hyperswarm/secret-stream')
const b4a = require('b4a')

const config = JSON.parse(process.argv[2])
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function out (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

async function main () {
  const store = new Corestore(config.storage)
  const socket = net.connect(config.connect, '127.0.0.1')
  const stream = new SecretStream(true, socket)
  stream.on('error', () => {})
  socket.on('error', () => {})
  store.replicate(stream)
  const drives = new Map()

  async function open (hex) {
    let drive = drives.get(hex)
    if (!drive) {
      drive = new Hyperdrive(store, b4a.from(hex, 'hex'))
      await drive.ready()
      drives.set(hex, drive)
    }
    const deadline = Date.now() + 20000
    while (drive.core.peers.length === 0 && Date.now() < deadline) await sleep(20)
    await drive.update({ wait: true })
    return drive
  }

  async function handle (msg) {
    if (msg.cmd === 'ls') {
      const drive = await open(msg.key)
      const files = {}
      for await (const entry of drive.list('/')) {
        const data = await drive.get(entry.key, { wait: true, timeout: 10000 })
        files[entry.key] = data ? b4a.toString(data, 'base64') : null
      }
      return out({ event: 'files', key: msg.key, version: drive.version, files })
    }
    if (msg.cmd === 'exit') {
      stream.destroy()
      process.exit(0)
    }
    throw new Error('unknown command ' + msg.cmd)
  }

  let chain = Promise.resolve()
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    const msg = JSON.parse(line)
    chain = chain.then(() => handle(msg)).catch((err) => out({ event: 'error', message: String(err && err.stack) }))
  })
  rl.on('close', () => process.exit(0))
  out({ event: 'ready' })
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
