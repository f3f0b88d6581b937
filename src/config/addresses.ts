/**
 * Syntax checks for the endpoints in gw.toml. Each returns a message saying what is
 * wrong, or null when the value is fine: the caller files it under the right key.
 */
import net from 'node:net';
import path from 'node:path';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function checkHost(host: string): string | null {
  if (host === '') return 'the host is missing';
  if (host.startsWith('[') && host.endsWith(']')) {
    return net.isIPv6(host.slice(1, -1)) ? null : `"${host}" is not an IPv6 address`;
  }
  if (net.isIPv4(host) || HOSTNAME.test(host)) return null;
  if (net.isIPv6(host)) return `write an IPv6 address in brackets: [${host}]`;
  return `"${host}" is not a host name or IP address`;
}

function checkPort(port: string, allowZero: boolean): string | null {
  const min = allowZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(port) || Number(port) < min || Number(port) > 65535) {
    return `the port must be a number from ${min} to 65535, got "${port}"`;
  }
  return null;
}

/** "host:port" (IPv6 as "[::1]:port"). */
export function checkHostPort(value: string, opts: { allowZeroPort?: boolean } = {}): string | null {
  const colon = value.lastIndexOf(':');
  if (colon === -1) return `must be host:port, e.g. "127.0.0.1:9000", got "${value}"`;
  return checkHost(value.slice(0, colon)) ?? checkPort(value.slice(colon + 1), opts.allowZeroPort ?? false);
}

/** A ZeroMQ endpoint m2gw connects to: tcp://host:port or ipc://path. */
export function checkZmqSpec(value: string): string | null {
  if (value.startsWith('tcp://')) {
    const hostPort = value.slice('tcp://'.length);
    if (hostPort.startsWith('*:')) {
      return `"*" is a bind address; m2gw connects, so give the address Mongrel2 binds, e.g. "tcp://127.0.0.1:9997"`;
    }
    const problem = checkHostPort(hostPort);
    return problem === null ? null : `${problem} (in "${value}")`;
  }
  if (value.startsWith('ipc://')) {
    // libzmq's "ipc://@name" (Linux abstract socket) is bound at the name's exact length;
    // Node connects to a NUL-padded one, a different address (src/zmq/zmtp-connection.ts).
    if (value.startsWith('ipc://@')) return `abstract ipc sockets ("ipc://@...") cannot be reached from Node: give Mongrel2 a socket path`;
    return value.length > 'ipc://'.length ? null : `ipc:// needs a socket path, e.g. "ipc://run/m2gw-send"`;
  }
  return `must be "tcp://host:port" or "ipc://path", got "${value}"`;
}

/** An upstream base URL: http or https, no query, fragment or credentials. */
export function checkHttpUrl(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `is not a URL: "${value}" (write e.g. "http://127.0.0.1:3000")`;
  }
  // WHATWG URL forgives "http:/x"; a config should say what it means.
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !/^https?:\/\//i.test(value)) {
    return `must be an http:// or https:// URL, got "${value}"`;
  }
  if (url.hostname === '') return `has no host: "${value}"`;
  if (url.search !== '' || url.hash !== '') return `must not have a query or fragment: "${value}"`;
  if (url.username !== '' || url.password !== '') return `must not contain credentials: "${value}"`;
  return null;
}

/**
 * A FastCGI address, "host:port" or "unix:/path". Returns the normalised address
 * (a relative socket path resolved against baseDir) or a problem.
 */
export function normaliseFastcgiAddress(value: string, baseDir: string): { address: string } | { problem: string } {
  if (value.startsWith('unix:')) {
    const socket = value.slice('unix:'.length);
    if (socket === '') return { problem: 'unix: needs a socket path, e.g. "unix:/run/php/php8.2-fpm.sock"' };
    return { address: `unix:${path.resolve(baseDir, socket)}` };
  }
  if (value.startsWith('/')) return { problem: `write a socket path as "unix:${value}"` };
  if (/^[a-z]+:\/\//i.test(value)) return { problem: `must be "host:port" or "unix:/path" (no scheme), got "${value}"` };
  const problem = checkHostPort(value);
  return problem === null ? { address: value } : { problem };
}
