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
