/**
 * Free TCP ports for tests, and a way to ask which ports a given process is
 * listening on (to tell "Mongrel2 bound it" apart from "someone else holds it").
 */
import { promises as fsp } from 'node:fs';
import net from 'node:net';

/*
 * Binding port 0 hands out a port the kernel considers free right now; it can be
 * handed out again as soon as we close it. Remembering what this process already
 * gave away stops two allocations in one test file from colliding before either
 * server has bound its port. Other processes can still race us; callers that
 * start servers must check the bind actually succeeded.
 */
const issued = new Set<number>();
const ISSUED_MAX = 4096;

function bindZero(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port from listen(0)'))));
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago and not yet handed out by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bindZero();
    if (issued.has(port)) continue;
    if (issued.size >= ISSUED_MAX) issued.clear();
    issued.add(port);
    return port;
  }
  throw new Error('freePort: kept getting ports already handed out');
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort());
  return out;
}

const TCP_LISTEN = '0A';

/**
 * TCP ports that process `pid` has a listening socket on, read from /proc (Linux).
 * Returns null when /proc is not usable, so callers can fall back to connecting.
 */
export async function listeningPortsOf(pid: number): Promise<Set<number> | null> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = await fsp.readdir(`/proc/${pid}/fd`);
  } catch {
    return null;
  }
  await Promise.all(
    fds.map(async (fd) => {
      try {
        const target = await fsp.readlink(`/proc/${pid}/fd/${fd}`);
        const m = /^socket:\[(\d+)\]$/.exec(target);
        if (m) inodes.add(m[1]!);
      } catch {
        // fd closed between readdir and readlink
      }
    }),
  );
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = await fsp.readFile(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== TCP_LISTEN || !inodes.has(cols[9]!)) continue;
      const portHex = cols[1]!.split(':')[1];
      if (portHex) ports.add(parseInt(portHex, 16));
    }
  }
  return ports;
}
