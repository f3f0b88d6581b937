/**
 * One ZMTP connection m2gw opens toward an endpoint Mongrel2 binds (tcp://host:port or
 * ipc://path), kept up the way libzmq keeps a connecting socket up: when it fails or
 * closes, it is opened again after RECONNECT_MS, for as long as it is wanted.
 *
 *   connect → greeting both ways → READY both ways (peer's Socket-Type checked) → ready
 *
 * Messages are delivered as their first frame (Mongrel2 sends single-frame messages);
 * commands after the handshake are ignored except SUBSCRIBE/CANCEL (ZMTP 3.1 peers).
 */
import net from 'node:net';
import {
  FrameDecoder,
  GREETING_BYTES,
  ZmtpError,
  checkGreeting,
  encodeGreeting,
  encodeReady,
  parseCommand,
  type Frame,
  type SocketType,
} from './zmtp-codec.js';

/** libzmq's default reconnect interval. */
const RECONNECT_MS = 100;

/** Which peer socket types may talk to ours (ZMTP 3.0 §"Socket types"). */
const PEERS: Record<SocketType, readonly string[]> = { PULL: ['PUSH'], PUB: ['SUB', 'XSUB'] };

export interface ZmtpEvents {
  /** Handshake done: messages may flow. */
  ready(): void;
  /** A message (its first frame). The Buffer may be a view into a larger read. */
  message(msg: Buffer): void;
  /** The connection went away after having been ready (a new one is being attempted). */
  down(): void;
  /** A handshake or protocol failure (the connection is retried). */
  problem(err: Error): void;
}

type State = 'connecting' | 'greeting' | 'handshake' | 'ready';

export class ZmtpConnection {
  private socket: net.Socket | null = null;
  private state: State = 'connecting';
  private greeting: Buffer[] = [];
  private greetingBytes = 0;
  private decoder = new FrameDecoder();
  private inMultipart = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private paused = false;
  /** The last problem reported: a peer that keeps failing the same way is reported once. */
  private lastProblem = '';

  constructor(
    readonly endpoint: string,
    private readonly type: SocketType,
    private readonly events: ZmtpEvents,
  ) {}

  get isReady(): boolean {
    return this.state === 'ready';
  }

  /** Bytes accepted by write() that the kernel has not taken yet. */
  get writableLength(): number {
    return this.socket?.writableLength ?? 0;
  }

  open(): void {
    if (this.closed || this.socket) return;
    const socket = net.connect(connectOptions(this.endpoint));
    this.socket = socket;
    this.state = 'connecting';
    this.greeting = [];
    this.greetingBytes = 0;
    this.decoder = new FrameDecoder();
    this.inMultipart = false;
    socket.on('connect', () => {
      if (socket.remoteFamily !== undefined) socket.setNoDelay(true);
      this.state = 'greeting';
      socket.write(encodeGreeting());
      if (this.paused) socket.pause();
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.onData(chunk);
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        if (e.message !== this.lastProblem) this.events.problem(e);
        this.lastProblem = e.message;
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose(socket));
  }

  /**
   * Send bytes already framed (see writeFrameHeader). Returns false once the kernel
   * buffer is full (the bytes are kept and sent in order meanwhile). Dropped when not ready.
   */
  write(data: Buffer): boolean {
    if (this.state !== 'ready' || !this.socket) return true;
    return this.socket.write(data);
  }

  /** Stop reading (the peer's sends back up into its own queue), or read again. */
  pause(): void {
    this.paused = true;
    this.socket?.pause();
  }

  resume(): void {
    this.paused = false;
    this.socket?.resume();
  }

  /** Wait up to `lingerMs` for written bytes to leave, then close for good. */
  async close(lingerMs = 0): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    if (lingerMs > 0 && socket.writableLength > 0 && this.state === 'ready') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, lingerMs);
        socket.end(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'greeting') {
      this.greeting.push(chunk);
      this.greetingBytes += chunk.length;
      if (this.greetingBytes < GREETING_BYTES) return;
      const all = Buffer.concat(this.greeting, this.greetingBytes);
      this.greeting = [];
      checkGreeting(all);
      this.state = 'handshake';
      this.socket!.write(encodeReady(this.type));
      if (all.length === GREETING_BYTES) return;
      chunk = all.subarray(GREETING_BYTES);
    }
    this.decoder.push(chunk, this.onFrame);
  }

  private readonly onFrame = (f: Frame): void => {
    if (f.command) {
      const cmd = parseCommand(f.body);
      if (this.state === 'handshake') {
        if (cmd.name === 'ERROR') throw new ZmtpError(`peer refused the handshake: ${cmd.data.toString('latin1', 1)}`);
        if (cmd.name !== 'READY') throw new ZmtpError(`expected READY, got ${cmd.name}`);
        const peer = (cmd.properties.get('socket-type') ?? '').toUpperCase();
        if (!PEERS[this.type].includes(peer)) throw new ZmtpError(`a ${this.type} cannot talk to a ${peer || 'untyped'} socket`);
        this.state = 'ready';
        this.lastProblem = '';
        this.events.ready();
      } else if (cmd.name === 'SUBSCRIBE' || cmd.name === 'CANCEL') {
        // ZMTP 3.1 subscriptions: handed on as the 3.0 message form.
        this.events.message(Buffer.concat([Buffer.from([cmd.name === 'SUBSCRIBE' ? 1 : 0]), cmd.data]));
      }
      return;
    }
    if (this.state !== 'ready') throw new ZmtpError('message before the handshake finished');
    // Only the first frame of a message is a Mongrel2 message; later parts are skipped.
    if (!this.inMultipart) this.events.message(f.body);
    this.inMultipart = f.more;
  };

  private onClose(socket: net.Socket): void {
    if (this.socket !== socket) return;
    this.socket = null;
    const wasReady = this.state === 'ready';
    this.state = 'connecting';
    if (wasReady) this.events.down();
    if (this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, RECONNECT_MS);
  }
}

/** tcp://host:port (host may be [v6]) or ipc://path, as config/addresses.ts accepts them. */
export function connectOptions(endpoint: string): net.NetConnectOpts {
  if (endpoint.startsWith('ipc://')) return { path: endpoint.slice('ipc://'.length) };
  if (!endpoint.startsWith('tcp://')) throw new Error(`unsupported endpoint ${endpoint}`);
  const hostPort = endpoint.slice('tcp://'.length);
  const colon = hostPort.lastIndexOf(':');
  let host = hostPort.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(hostPort.slice(colon + 1)) };
}
