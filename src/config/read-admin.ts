/**
 * [admin]: the listener for /healthz, /readyz, /metrics and /status (admin/admin-server.ts).
 * It tells whoever reaches it the upstreams' addresses and health, worker pids, traffic counts
 * and reload results, so by default it may only listen on loopback. A non-loopback `listen` is
 * refused unless `allow_remote = true`, and then a bearer token (`token` or `token_file`) is
 * required; a token may also be set on loopback.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { AdminConfig } from './schema.js';
import { checkHostPort } from './addresses.js';
import type { TableReader } from './table-reader.js';

/** Shorter tokens are refused: the listener may be reachable from other hosts. */
export const MIN_TOKEN_LENGTH = 16;

export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    const l = h.toLowerCase();
    if (l === '::1' || l === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(l);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}

export function readAdmin(t: TableReader | null): AdminConfig | null {
  if (t === null) return null;
  const listen = t.string('listen', { required: 'the admin HTTP listener, e.g. "127.0.0.1:9180"' });
  let host: string | null = null;
  if (listen !== undefined) {
    const problem = checkHostPort(listen, { allowZeroPort: true });
    if (problem !== null) t.error('listen', problem);
    else host = listen.slice(0, listen.lastIndexOf(':'));
  }
  const allowRemote = t.boolean('allow_remote') ?? false;
  const token = readToken(t);
  if (host !== null && !isLoopbackHost(host) && !allowRemote) {
    t.error(
      'listen',
      `"${listen}" is not a loopback address: the admin listener shows upstream addresses, pids and reload results. ` +
        'Listen on 127.0.0.1, or set allow_remote = true together with token or token_file',
    );
  }
  if (allowRemote && token === null && !t.has('token') && !t.has('token_file')) {
    t.error('allow_remote', 'needs a bearer token: set token = "…" or token_file = "/path" (at least 16 characters)');
  }
  t.reportUnknownKeys();
  return { listen: listen ?? '', allowRemote, token };
}

/** The token from `token` or `token_file` (exactly one), or null; problems are reported. */
function readToken(t: TableReader): string | null {
  const inline = t.string('token');
  const file = t.filePath('token_file');
  if (inline !== undefined && file !== undefined) {
    t.error('token_file', 'set token or token_file, not both');
    return null;
  }
  let token: string | undefined = inline;
  let key = 'token';
  if (file !== undefined) {
    key = 'token_file';
    try {
      const st = fs.statSync(file);
      if ((st.mode & 0o004) !== 0) t.warn('token_file', `${file} is readable by every user: chmod o-r it`);
      token = fs.readFileSync(file, 'utf8').trim();
    } catch (err) {
      t.error('token_file', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      return null;
    }
  }
  if (token === undefined) return null;
  // eslint-disable-next-line no-control-regex
  if (token.length < MIN_TOKEN_LENGTH || /[\s\x00-\x1f\x7f]/.test(token)) {
    t.error(key, `the token must be at least ${MIN_TOKEN_LENGTH} characters, without spaces or control characters`);
    return null;
  }
  return token;
}
