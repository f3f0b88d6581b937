/**
 * Longest-prefix routing, with an optional Host match. Routes are sorted once at
 * construction so a lookup is a linear scan that stops at the first hit; a host-bound
 * route wins over a host-less one with the same prefix.
 */
import type { RouteConfig } from '../config/schema.js';
import type { Upstream } from '../upstream/upstream.js';

export interface Route {
  readonly prefix: string;
  readonly host: string | null;
  readonly upstream: Upstream;
  readonly stripPrefix: boolean;
  readonly maxBodyBytes: number;
  readonly preserveHost: boolean;
  readonly websocket: boolean;
}

export class Router {
  private readonly routes: readonly Route[];

  constructor(configs: readonly RouteConfig[], upstreams: ReadonlyMap<string, Upstream>) {
    const routes: Route[] = configs.map((c) => {
      const upstream = upstreams.get(c.upstream);
      if (!upstream) throw new Error(`route ${c.prefix}: unknown upstream ${c.upstream}`);
      return {
        prefix: c.prefix,
        host: c.host ? c.host.toLowerCase() : null,
        upstream,
        stripPrefix: c.stripPrefix,
        maxBodyBytes: c.maxBodyBytes,
        preserveHost: c.preserveHost,
        websocket: c.websocket,
      };
    });
    routes.sort((a, b) => b.prefix.length - a.prefix.length || Number(b.host !== null) - Number(a.host !== null));
    this.routes = routes;
  }

  /** host: lower-cased, without port ('' when the request had none). */
  match(host: string, path: string): Route | null {
    for (const r of this.routes) {
      if (r.host !== null && r.host !== host) continue;
      if (path.startsWith(r.prefix)) return r;
    }
    return null;
  }
}

/** The path the upstream sees: "/rails/x" under prefix "/rails/" with strip_prefix becomes "/x". */
export function upstreamPath(route: Route, path: string): string {
  if (!route.stripPrefix) return path;
  const cut = route.prefix.endsWith('/') ? route.prefix.length - 1 : route.prefix.length;
  const rest = path.slice(cut);
  return rest.startsWith('/') ? rest : '/' + rest;
}

/**
 * A `..` segment in a raw request path, or null. Routing matches raw prefixes, so
 * `/public/../admin` (or `/public/%2e%2e/admin`) would match `/public/` and leave it at the
 * upstream, whose own normalisation decides. Refused before routing instead, as the FastCGI
 * resolver does; browsers remove dot-segments before sending, so only crafted requests have
 * them. Counted as separators, because some backends treat them so: `/`, `\`, `%2F`, `%5C`;
 * a segment's `;params` are ignored (Tomcat reads `..;` as `..`); `.` may be `%2E`. Linear.
 */
export function dotDotSegment(path: string): boolean {
  let dots = 0;
  let other = false;
  let params = false;
  const n = path.length;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? path.charCodeAt(i) : 0x2f;
    let separator = c === 0x2f || c === 0x5c;
    let dot = c === 0x2e;
    if (c === 0x25 && i + 2 < n) {
      const hi = path.charCodeAt(i + 1);
      const lo = path.charCodeAt(i + 2) | 0x20;
      if (hi === 0x32 && lo === 0x66) separator = true; //      %2f
      else if (hi === 0x35 && lo === 0x63) separator = true; // %5c
      else if (hi === 0x32 && lo === 0x65) dot = true; //        %2e
      if (separator || dot) i += 2;
    }
    if (separator) {
      if (dots === 2 && !other) return true;
      dots = 0;
      other = false;
      params = false;
    } else if (params) {
      continue;
    } else if (c === 0x3b) {
      params = true;
    } else if (dot) {
      dots++;
    } else {
      other = true;
    }
  }
  return false;
}
