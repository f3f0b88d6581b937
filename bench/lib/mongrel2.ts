/**
 * The bench's Mongrel2: handler routes (m2gw, the trivial handler) and a Proxy route in
 * one server, so every variant goes through the same Mongrel2 process. Started by the
 * test harness (test/harness/mongrel2.ts); this only names the routes and registers the
 * instance for cleanup.
 */
import { allocHandlerSpecs, startMongrel2 as startHarnessMongrel2 } from '../../test/harness/mongrel2.js';
import type { ProcessGroup } from './procs.js';

export interface HandlerSpec {
  readonly sendSpec: string;
  readonly recvSpec: string;
}

export interface Mongrel2Options {
  /** Route prefixes that each get their own handler sockets. */
  readonly handlers: readonly string[];
  /** Route prefix → port of an app on 127.0.0.1, served by Mongrel2's Proxy. */
  readonly proxies: Readonly<Record<string, number>>;
  readonly settings: Readonly<Record<string, string | number>>;
}

export interface Mongrel2 {
  readonly port: number;
  /** Instance dir: Mongrel2's chroot when running as root (upload temp files under tmp/). */
  readonly dir: string;
  /** What m2gw's `chroot` must be for upload paths Mongrel2 reports to resolve. */
  readonly chroot: string;
  readonly pid: number;
  /** Handler sockets by route prefix. */
  readonly handlers: ReadonlyMap<string, HandlerSpec>;
  stop(): Promise<void>;
}

export async function startMongrel2(group: ProcessGroup, opts: Mongrel2Options): Promise<Mongrel2> {
  const specs = await allocHandlerSpecs(opts.handlers.length);
  const handlers = new Map<string, HandlerSpec>();
  opts.handlers.forEach((prefix, i) => handlers.set(prefix, specs[i]!));
  const m2 = await startHarnessMongrel2({
    handlers: opts.handlers.map((_prefix, i) => ({ name: `h${i}`, ...specs[i]!, protocol: 'json' as const })),
    routes: [
      ...opts.handlers.map((prefix, i) => ({ path: prefix, handler: `h${i}` })),
      ...Object.entries(opts.proxies).map(([prefix, port]) => ({ path: prefix, proxy: { addr: '127.0.0.1', port } })),
    ],
    settings: { ...opts.settings },
  });
  group.defer('mongrel2', () => m2.stop());
  return { port: m2.port, dir: m2.dir, chroot: m2.chroot, pid: m2.pid, handlers, stop: () => m2.stop() };
}
