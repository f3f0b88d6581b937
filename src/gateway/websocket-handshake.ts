/**
 * The two HTTP halves of a proxied WebSocket handshake: the Upgrade request toward the
 * upstream, and the 101 toward the client built from the upstream's 101.
 */
import { UpstreamError } from '../errors.js';
import { encodeResponseHead } from '../mongrel2/http-head.js';
import type { HeaderList, UpstreamRequest } from '../upstream/upstream.js';
import { acceptKey } from '../websocket/frame.js';

/** Upstream 101 headers that belong to the upstream hop or that we write ourselves. */
const NOT_FORWARDED = new Set(['connection', 'upgrade', 'keep-alive', 'transfer-encoding', 'content-length', 'sec-websocket-accept', 'sec-websocket-extensions']);

/** The Upgrade request toward the upstream, from the handshake's UpstreamRequest fields. */
export function upgradeRequest(base: Omit<UpstreamRequest, 'upgrade' | 'method' | 'body'>): UpstreamRequest {
  return {
    ...base,
    method: 'GET',
    body: null,
    // Mongrel2 cannot carry compressed frames (RSV1), so no extension may be negotiated.
    headers: base.headers.filter(([name]) => name !== 'sec-websocket-extensions'),
    upgrade: 'websocket',
  };
}

/**
 * The raw 101 for the client: our Upgrade/Connection and an Accept for the client's key
 * (which must be what the upstream computed too, since it got the same key), then the
 * upstream's other headers (Sec-WebSocket-Protocol, Set-Cookie…). An upstream 101 that
 * is not valid for the key, or that picks an extension nobody offered, is a 502.
 */
export function clientSwitchingHead(upstream: string, clientKey: string, status: number, headers: HeaderList): Buffer | UpstreamError {
  const expected = acceptKey(clientKey);
  let accept: string | undefined;
  const out: HeaderList = [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Accept', expected]];
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (lower === 'sec-websocket-accept') accept = value.trim();
    if (lower === 'sec-websocket-extensions') {
      return new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `upstream ${upstream} chose extension "${value}" that was not offered`, 'request-sent');
    }
    if (!NOT_FORWARDED.has(lower)) out.push([name, value]);
  }
  if (status !== 101 || accept !== expected) {
    return new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `upstream ${upstream} answered the upgrade with an invalid Sec-WebSocket-Accept`, 'request-sent');
  }
  try {
    return encodeResponseHead(101, out);
  } catch (err) {
    return new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `invalid 101 header from upstream ${upstream}: ${(err as Error).message}`, 'request-sent');
  }
}
