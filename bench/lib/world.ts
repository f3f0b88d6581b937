/**
 * The long-lived pieces one group of measurements shares: the HTTP app, a Mongrel2 with
 * handler routes for m2gw and the trivial handler plus a Proxy route to the app, and the
 * trivial handler itself. m2gw is started per phase (its config changes between phases).
 */
import path from 'node:path';
import { startMongrel2, type Mongrel2 } from './mongrel2.js';
import { startM2gw, type M2gwInstance, type M2gwOptions } from './m2gw.js';
import { BENCH_DIST } from './paths.js';
import { waitForLine, type Managed, type ProcessGroup } from './procs.js';

export interface App {
  readonly port: number;
  readonly pid: number;
  readonly url: string;
}

export async function startApp(group: ProcessGroup): Promise<App> {
  const proc = group.spawn('app', process.execPath, [path.join(BENCH_DIST, 'app-server.js'), '--port', '0']);
  const port = await waitForLine(proc, (line) => {
    try {
      return (JSON.parse(line) as { port?: number }).port;
    } catch {
      return undefined;
    }
  });
  return { port, pid: proc.pid, url: `http://127.0.0.1:${port}` };
}

export interface World {
  readonly flowControl: boolean;
  readonly m2: Mongrel2;
  /** http://127.0.0.1:<mongrel2 port> */
  readonly base: string;
  readonly trivialPid: number;
  /** Why a route may have stopped answering: process states and log tails. */
  diagnose(): string;
  stop(): Promise<void>;
}

export async function startWorld(group: ProcessGroup, app: App, flowControl: boolean, chunk: number): Promise<World> {
  const m2 = await startMongrel2(group, {
    handlers: ['/gw/', '/trivial/'],
    proxies: { '/proxy/': app.port },
    settings: {
      'download.flow_control': flowControl ? 1 : 0,
      'limits.content_length': 20480,
      'upload.temp_store': '/tmp/upload.XXXXXX',
      'server.daemonize': 0,
      'zeromq.threads': 1,
    },
  });
  const spec = m2.handlers.get('/trivial/')!;
  const trivial = group.spawn('trivial-handler', process.execPath, [
    path.join(BENCH_DIST, 'trivial-handler.js'),
    '--send-spec',
    spec.sendSpec,
    '--recv-spec',
    spec.recvSpec,
    '--chunk',
    String(chunk),
  ]);
  await waitForLine(trivial, (l) => (l.trim() === 'ready' ? true : undefined));
  return {
    flowControl,
    m2,
    base: `http://127.0.0.1:${m2.port}`,
    trivialPid: trivial.pid,
    diagnose: () => {
      const state = (m: Managed): string => (m.child.exitCode !== null || m.child.signalCode !== null ? `exited (${String(m.child.exitCode ?? m.child.signalCode)})` : 'running');
      return `trivial handler ${state(trivial)}${trivial.tail() ? `, output: ${trivial.tail().slice(-1000)}` : ''}`;
    },
    stop: async () => {
      await trivial.stop();
      await m2.stop();
    },
  };
}

/** Start m2gw on the world's /gw/ handler; the caller stops it. */
export function startWorldM2gw(
  group: ProcessGroup,
  world: World,
  o: Omit<M2gwOptions, 'handler' | 'chroot' | 'probeUrl'> & { probePath: string },
): Promise<M2gwInstance> {
  const { probePath, ...rest } = o;
  return startM2gw(group, {
    ...rest,
    handler: world.m2.handlers.get('/gw/')!,
    chroot: world.m2.chroot,
    probeUrl: world.base + probePath,
  });
}
