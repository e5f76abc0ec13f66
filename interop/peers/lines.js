'use strict'
// Shared by the JSON-line JS test peers: one JSON object per stdin line is a command, handled one
// at a time in order; a failing command is reported as {"event":"error"} and the peer goes on.
// The peer exits when stdin closes.

const readline = require('readline')

function out (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function serveCommands (handle) {
  let chain = Promise.resolve()
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    const msg = JSON.parse(line)
    chain = chain.then(() => handle(msg)).catch((err) => out({ event: 'error', message: String(err && err.stack) }))
  })
  rl.on('close', () => process.exit(0))
}

function runMain (main) {
  main().catch((err) => {
    process.stderr.write(String(err && err.stack) + '\n')
    process.exit(1)
  })
}

// Reject with 'timeout: <what>' if the promise has not settled within ms.
function withTimeout (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error('timeout: ' + what)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// The test peers only ever talk to 127.0.0.0/8: anything else is a bug in a test, so throw.
function loopback (addr) {
  if (!String(addr.host).startsWith('127.')) throw new Error('refusing non-loopback address ' + addr.host)
  return { host: addr.host, port: addr.port }
}

// A peer that outlives its test (a stuck command, a lost parent) ends itself after ms.
function giveUpAfter (ms) {
  setTimeout(() => {
    out({ event: 'timeout' })
    process.exit(3)
  }, ms).unref()
}

module.exports = { out, serveCommands, runMain, withTimeout, loopback, giveUpAfter }
