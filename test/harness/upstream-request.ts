/**
 * An UpstreamRequest as the gateway would make it, for tests that drive an upstream directly:
 * GET `target` from 127.0.0.1 with Host example.test (preserved), no body.
 */
import type { UpstreamRequest } from '../../src/upstream/upstream.js';

export interface RequestOptions extends Partial<Omit<UpstreamRequest, 'signal'>> {
  signal?: AbortSignal;
}

let counter = 0;

/** A request for `target` ("/path?query"); `over` replaces any field. */
export function upstreamRequest(target: string, over: RequestOptions = {}): UpstreamRequest {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q + 1);
  return {
    id: `req-${++counter}`,
    method: 'GET',
    path,
    query,
    hasQuery: q !== -1,
    originalUri: target,
    routePrefix: '/',
    httpVersion: 'HTTP/1.1',
    headers: [['host', 'example.test']],
    host: 'example.test',
    hostHeader: 'example.test',
    remoteAddr: '127.0.0.1',
    scheme: 'http',
    serverPort: 80,
    body: null,
    preserveHost: true,
    signal: new AbortController().signal,
    ...over,
  };
}

