/** Where PHP-FPM listens: "host:port" (IPv6 as "[::1]:port") or "unix:/path". */

export type FcgiAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export function parseAddress(address: string): FcgiAddress {
  if (address.startsWith('unix:')) {
    const p = address.slice('unix:'.length);
    if (p === '') throw new RangeError('"unix:" needs a socket path');
    return { kind: 'unix', path: p };
  }
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (colon <= 0 || host === '' || !/^\d+$/.test(address.slice(colon + 1)) || port < 1 || port > 65535) {
    throw new RangeError(`FastCGI address must be "host:port" or "unix:/path", got "${address}"`);
  }
  return { kind: 'tcp', host, port };
}

export function describeAddress(a: FcgiAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
