/**
 * A worker process: a Gateway in publishOnly mode. Mongrel2 messages arrive from the
 * supervisor on the data channel (fd 4); replies leave on the worker's own XPUB
 * sockets straight to Mongrel2. Control and reports use IPC (process.send).
 *
 * Signals: SIGINT is ignored (Ctrl-C reaches the whole process group; the supervisor
 * leads the shutdown), SIGTERM drains and exits, SIGUSR1 reopens log files. If the
 * supervisor goes away the worker drains and exits on its own.
 */
import net from 'node:net';
import { parseConfigText } from '../config/load.js';
import { formatProblems } from '../errors.js';
import type { Config } from '../config/schema.js';
import { Gateway } from '../gateway/gateway.js';
import { createLogger, reopenLogFiles, type Logger } from '../log.js';
import { createProcessMetrics, type ProcessMetrics } from '../metrics/worker-metrics.js';
import { createUpstreams } from '../upstream/registry.js';
import type { Upstream } from '../upstream/upstream.js';
import { ChannelDecoder } from './channel.js';
import { connKey, isToWorker, type FromWorker, type ToWorker, type WorkerStatus } from './messages.js';
import { OwnershipReporter } from './ownership-reporter.js';
import { PullBorrower } from './pull-borrower.js';

/** The fd of the data channel (stdio index 4 of the fork). */
const CHANNEL_FD = 4;

type Init = Extract<ToWorker, { t: 'init' }>;

export async function runWorker(): Promise<void> {
  process.on('SIGINT', () => undefined);
  send({ t: 'loaded' });
  const init = await waitForInit();
  const { config, problems } = parseConfigText(init.text, init.file);
  if (!config) {
    send({ t: 'failed', error: `config invalid:\n${formatProblems(init.file, problems)}` }, () => process.exit(1));
    return;
  }
  const worker = new Worker(init, config);
  await worker.start();
}

/** A spare worker waits here, code loaded, until the supervisor needs it (or goes away). */
function waitForInit(): Promise<Init> {
  return new Promise((resolve) => {
    const onDisconnect = (): void => process.exit(0);
    const onMessage = (m: unknown): void => {
      if (isToWorker(m) && m.t === 'init') {
        process.off('message', onMessage);
        process.off('disconnect', onDisconnect);
        resolve(m);
      }
    };
    process.on('message', onMessage);
    process.on('disconnect', onDisconnect);
  });
}

function send(msg: FromWorker, cb?: () => void, socket?: net.Socket): void {
  if (process.connected && process.send) {
    process.send(msg, socket, {}, () => cb?.());
  } else {
    cb?.();
  }
}

class Worker {
  private readonly log: Logger;
  private readonly upstreams: Map<string, Upstream>;
  private readonly gateway: Gateway;
  private readonly metrics: ProcessMetrics;
  private readonly reporter: OwnershipReporter;
  private readonly borrower: PullBorrower;
  /** Data messages taken from the channel so far (the supervisor counts the same). */
  private seen = 0;
  private stopping = false;

  constructor(
    private readonly init: Init,
    private readonly config: Config,
  ) {
    this.log = createLogger(config.log, { pid: process.pid, worker: init.id, generation: init.generation });
    this.upstreams = createUpstreams(config, this.log);
    this.metrics = createProcessMetrics({
      inFlight: () => this.gateway.inFlight,
      connections: () => this.gateway.connectionCount,
      upstreams: () => this.health(),
    });
    this.reporter = new OwnershipReporter({
      seen: () => this.seen,
      busy: () => this.gateway.busyConnections(),
      send: (m) => send(m),
    });
    const mh = this.metrics.hooks;
    this.gateway = new Gateway({
      config,
      logger: this.log,
      upstreams: this.upstreams,
      publishOnly: true,
      creditWindows: init.creditWindows,
      handlerIds: init.handlerIds,
      hooks: {
        onRequestDone: (info) => {
          mh.onRequestDone?.(info);
          this.reporter.changed();
        },
        onDisconnectAbort: () => mh.onDisconnectAbort?.(),
        onBadFrame: () => mh.onBadFrame?.(),
        onWebSocketOpened: () => mh.onWebSocketOpened?.(),
        onWebSocketMessage: (direction, bytes) => mh.onWebSocketMessage?.(direction, bytes),
        onWebSocketEnded: (report) => {
          mh.onWebSocketEnded?.(report);
          this.reporter.changed();
        },
        onConnectionClosed: (handlerIndex, connId) => {
          const key = connKey(handlerIndex, connId);
          this.borrower.closed(handlerIndex, key);
          this.reporter.closed(key);
        },
      },
    });
    this.borrower = new PullBorrower({
      gateway: this.gateway,
      reporter: this.reporter,
      seen: () => this.seen,
      send: (m, socket) => send(m, undefined, socket),
    });
  }

  async start(): Promise<void> {
    process.on('message', (m: unknown, handle: unknown) => {
      if (!isToWorker(m)) return;
      if (m.t === 'lend-pull') {
        if (handle instanceof net.Socket) this.borrower.lend(m, handle);
        else send({ t: 'pull-down', handler: m.handler });
        return;
      }
      void this.onControl(m);
    });
    process.on('disconnect', () => {
      this.log.warn('supervisor gone: draining');
      void this.stop(this.config.gateway.drainTimeoutMs, false);
    });
    process.on('SIGTERM', () => void this.stop(this.config.gateway.drainTimeoutMs, true));
    process.on('SIGUSR1', () => reopenLogFiles(this.log));
    try {
      await this.gateway.start();
    } catch (err) {
      this.log.error('worker could not connect to Mongrel2', { error: String(err) });
      send({ t: 'failed', error: String(err) }, () => process.exit(1));
      return;
    }
    this.openChannel();
    send({ t: 'ready' });
    this.log.debug('worker ready', { handlers: this.config.handlers.length });
  }

  private openChannel(): void {
    const socket = new net.Socket({ fd: CHANNEL_FD, readable: true, writable: false });
    const decoder = new ChannelDecoder();
    socket.on('data', (chunk: Buffer) => {
      let records;
      try {
        records = decoder.push(chunk);
      } catch (err) {
        this.log.error('data channel corrupt', { error: String(err) });
        process.exit(1);
      }
      for (const r of records) {
        if (r.kind === 'message') {
          this.seen++;
          this.gateway.handleMessage(r.handlerIndex, r.msg);
        } else {
          void this.stop(r.timeoutMs, true);
        }
      }
      this.borrower.poll();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (!this.stopping) {
        this.log.warn('data channel closed: draining');
        void this.stop(this.config.gateway.drainTimeoutMs, false);
      }
    });
  }

  private async onControl(m: ToWorker): Promise<void> {
    switch (m.t) {
      case 'query':
        if (m.what === 'status') send({ t: 'reply', qid: m.qid, data: this.status() });
        else send({ t: 'reply', qid: m.qid, data: await this.metrics.registry.getMetricsAsJSON() });
        return;
      case 'retire':
        this.log.info('retiring: handing idle connections to the new generation');
        this.reporter.retire();
        // Open WebSockets keep this worker until they end; after drain_timeout they get 1001.
        setTimeout(() => this.gateway.closeWebSockets(), this.config.gateway.drainTimeoutMs).unref();
        return;
      case 'reopen-logs':
        reopenLogFiles(this.log);
        return;
      case 'return-pull':
        this.borrower.giveBack(m.handler);
        return;
      case 'init':
      case 'lend-pull':
        return;
    }
  }

  private status(): WorkerStatus {
    return {
      id: this.init.id,
      pid: process.pid,
      generation: this.init.generation,
      inFlight: this.gateway.inFlight,
      connections: this.gateway.connectionCount,
      connected: this.gateway.connected,
      upstreams: this.health(),
    };
  }

  private health(): ReturnType<Upstream['health']>[] {
    return [...this.upstreams.values()].map((u) => u.health());
  }

  /** Drain (new requests get 503), close, report final counters, exit 0. */
  private async stop(timeoutMs: number, reportMetrics: boolean): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    // Stopped by the supervisor, it has its PULLs back already; stopped otherwise, hand them
    // back (with the reports that must precede them) before the reporter falls silent.
    this.borrower.giveBackAll();
    this.reporter.stop();
    let left = 0;
    try {
      left = await this.gateway.drain(timeoutMs);
    } catch (err) {
      this.log.error('drain failed', { error: String(err) });
    }
    this.log.info('worker stopped', { unfinished: left });
    const exit = (): void => {
      this.log.on('finish', () => process.exit(0));
      this.log.end();
      setTimeout(() => process.exit(0), 500).unref();
    };
    if (reportMetrics && process.connected) {
      const metrics = await this.metrics.registry.getMetricsAsJSON();
      send({ t: 'final-metrics', metrics }, exit);
    } else {
      exit();
    }
  }
}
