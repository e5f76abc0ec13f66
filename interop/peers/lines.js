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

module.exports = { out, serveCommands, runMain }
