// server.mjs — what the API tests share: a free local port, `hearth serve` started on it over a models
// directory (waiting until it answers), every server's stderr for failure messages, and stopping them all.
import { spawn } from 'node:child_process';
import net from 'node:net';

const spawned = []; // every server started, stopped by stopServers() even when a test failed
let log = '';

export function serverLog() {
  return log;
}

export async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// Starts `hearth serve` (HEARTH_BIN) on a free port over modelsDir, with env added to the environment;
// resolves to { proc, base, port } once GET / answers.
export async function startServer(modelsDir, env = {}) {
  const port = await freePort();
  const proc = spawn(process.env.HEARTH_BIN, ['serve'], {
    env: { ...process.env, HEARTH_HOST: `127.0.0.1:${port}`, HEARTH_MODELS: modelsDir, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  spawned.push(proc);
  proc.stderr.on('data', (d) => { log += d; });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(base)).ok) return { proc, base, port }; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not start: ' + log);
}

export async function stopServers() {
  for (const p of spawned) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    }
  }
}
