/**
 * One ZMTP connection m2gw opens toward an endpoint Mongrel2 binds (tcp://host:port or
 * ipc://path), kept up the way libzmq keeps a connecting socket up: when it fails or
 * closes, it is opened again after a reconnect interval, for as long as it is wanted.
 *
 *   connect → greeting both ways → READY both ways (peer's Socket-Type checked) → ready
 *
 * Messages are delivered as their first frame (Mongrel2 sends single-frame messages);
 * commands after the handshake are ignored except SUBSCRIBE/CANCEL (ZMTP 3.1 peers) and
 * PING, answered with PONG.
 *
 * Every connection starts from nothing (fresh greeting, fresh decoder): bytes of a frame
 * the old connection had half received or half sent are never carried over, so a
 * reconnect can lose what was in flight (as with libzmq) but never duplicates or splices.
 */
import net from 'node:net';
import {
  FrameDecoder,
  GREETING_BYTES,
  ZmtpError,
  checkGreeting,
  encodeGreeting,
  encodePong,
  encodeReady,
  parseCommand,
  type SocketType,
} from './zmtp-codec.js';

/**
 * libzmq's default ZMQ_RECONNECT_IVL is 100 ms, to which it adds a random jitter of up
 * to one interval (so many clients of one restarted server do not all come back in the
 * same millisecond). We also double the interval while attempts keep failing, up to
 * RECONNECT_MAX_MS (libzmq's ZMQ_RECONNECT_IVL_MAX; off by default there, but a
 * daemon retrying an absent Mongrel2 ten times a second for hours is noise), and start
 * again from 100 ms once a handshake succeeds. 1 s bounds how late we notice a
 * restarted Mongrel2 (it binds its handler sockets ~45 ms after it is spawned).
 */
const RECONNECT_MS = 100;
const RECONNECT_MAX_MS = 1_000;
/**
 * libzmq's ZMQ_HANDSHAKE_IVL default: a peer that accepts the connection but does not
 * finish the handshake in this time (a wrong port, a hung process) is dropped and retried
 * instead of holding the connection forever.
 */
const HANDSHAKE_TIMEOUT_MS = 30_000;

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
  /** Bytes written while write() returned false have left: the kernel takes data again. */
  drain?(): void;
}

export interface ZmtpConnectionOptions {
  /** Default HANDSHAKE_TIMEOUT_MS (tests shorten it). */
  readonly handshakeTimeoutMs?: number;
}

/**
 * A ready PULL connection handed to another process (process/pull-lending.ts says why):
 * the socket, stopped at a frame boundary of what was read, the bytes read past that
 * boundary, and whether those bytes continue a multipart message.
 */
export interface LentPull {
  readonly socket: net.Socket;
  readonly rest: Buffer;
  readonly inMultipart: boolean;
}

/** 'lent': the ready socket is held by another process (lend() / adopt()). */
type State = 'connecting' | 'greeting' | 'handshake' | 'ready' | 'lent';

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
  private reconnectMs = RECONNECT_MS;
  private readonly handshakeTimeoutMs: number;
  /** Lent to us by another process: not ours to reopen. */
  private borrowed = false;

  constructor(
    readonly endpoint: string,
    private readonly type: SocketType,
    private readonly events: ZmtpEvents,
    options: ZmtpConnectionOptions = {},
  ) {
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  }

  /** Handshake done, here or in the process the connection is lent to. */
  get isReady(): boolean {
    return this.state === 'ready' || this.state === 'lent';
  }

  get isLent(): boolean {
    return this.state === 'lent';
  }

  /**
   * A connection lent by another process (see LentPull), ready from the start. It is
   * never reopened here: when it closes, `down` fires and the lender reconnects.
   */
  static borrowed(endpoint: string, type: SocketType, events: ZmtpEvents, lent: LentPull): ZmtpConnection {
    const c = new ZmtpConnection(endpoint, type, events);
    c.borrowed = true;
    c.adopt(lent);
    return c;
  }

  /** Bytes accepted by write() that the kernel has not taken yet. */
  get writableLength(): number {
    return this.socket?.writableLength ?? 0;
  }

  open(): void {
    if (this.closed || this.socket || this.state === 'lent') return;
    const socket = net.connect(connectOptions(this.endpoint));
    this.state = 'connecting';
    this.greeting = [];
    this.greetingBytes = 0;
    this.decoder = new FrameDecoder();
    this.inMultipart = false;
    // Covers connecting too: a SYN nobody answers (a firewalled host) is also given up.
    socket.setTimeout(this.handshakeTimeoutMs);
    socket.on('timeout', () => {
      if (this.state === 'ready') return;
      this.report(new ZmtpError(`no ZMTP handshake within ${this.handshakeTimeoutMs} ms (is ${this.endpoint} Mongrel2's?)`));
      socket.destroy();
    });
    socket.on('connect', () => {
      if (socket.remoteFamily !== undefined) socket.setNoDelay(true);
      this.state = 'greeting';
      socket.write(encodeGreeting());
      // pause() is not applied before the handshake is done: Mongrel2 1.12 may hold back
      // its subscription until a PULL is attached (handler-socket.ts), and libzmq attaches
      // the peer only after READY.
    });
    this.attach(socket);
  }

  /**
   * Hand the ready connection to another process: stop reading at once, decode what was
   * already read (its messages are delivered here, now), and return the socket with the
   * bytes of a frame not yet complete. Nothing the kernel holds is read here any more, so
   * the borrower goes on exactly where this left off. Null if not ready.
   */
  lend(): LentPull | null {
    const socket = this.socket;
    if (this.state !== 'ready' || !socket || socket.destroyed) return null;
    stopReading(socket);
    // What the stream already buffered (normally nothing: a flowing stream hands each chunk
    // on as it comes): read() gives it to the 'data' listener. read() may ask libuv to read
    // again; that only happens in a later poll, and the stopReading() below comes first.
    while (socket.readableLength > 0 && socket.read() !== null);
    stopReading(socket);
    if (this.socket !== socket || this.state !== 'ready') return null;
    socket.removeAllListeners();
    socket.on('error', () => undefined);
    this.socket = null;
    this.state = 'lent';
    const rest = this.decoder.takeRest();
    this.decoder = new FrameDecoder();
    return { socket, rest, inMultipart: this.inMultipart };
  }

  /** Take a lent connection (back): ready, reading from where the lender stopped. */
  adopt(lent: LentPull): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.state = 'ready';
    this.decoder = new FrameDecoder();
    this.inMultipart = lent.inMultipart;
    this.socket = lent.socket;
    lent.socket.setTimeout(0);
    this.attach(lent.socket);
    if (lent.rest.length > 0) this.onData(lent.rest);
    if (this.paused) lent.socket.pause();
    else startReading(lent.socket);
  }

  /** The process this connection was lent to lost it (it died, or the peer closed): connect anew. */
  lendingLost(): void {
    if (this.state !== 'lent') return;
    this.state = 'connecting';
    this.events.down();
    this.scheduleReopen();
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.onData(chunk);
      } catch (err) {
        this.report(err instanceof Error ? err : new Error(String(err)));
        socket.destroy();
      }
    });
    socket.on('drain', () => this.events.drain?.());
    // Refused/reset connections are normal while Mongrel2 restarts: the close that follows
    // schedules the retry; a peer that stays away shows as "waiting for Mongrel2" upstairs.
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

  /** Gather the writes until uncork() into one system call (writev). */
  cork(): void {
    this.socket?.cork();
  }

  uncork(): void {
    this.socket?.uncork();
  }

  /** Stop reading (the peer's sends back up into its own queue), or read again. */
  pause(): void {
    this.paused = true;
    if (this.state === 'ready') this.socket?.pause();
  }

  resume(): void {
    this.paused = false;
    if (this.socket) startReading(this.socket);
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
      const all = this.greeting.length === 1 ? chunk : Buffer.concat(this.greeting, this.greetingBytes);
      // Judged as it arrives: an older peer stops short of 64 bytes and waits for us.
      checkGreeting(all);
      if (this.greetingBytes < GREETING_BYTES) {
        this.greeting = [all];
        return;
      }
      this.greeting = [];
      this.state = 'handshake';
      this.socket!.write(encodeReady(this.type));
      if (all.length === GREETING_BYTES) return;
      chunk = all.subarray(GREETING_BYTES);
    }
    this.decoder.push(chunk, this.onFrame);
  }

  private readonly onFrame = (body: Buffer, command: boolean, more: boolean): void => {
    if (command) {
      const cmd = parseCommand(body);
      if (this.state === 'handshake') {
        if (cmd.name === 'ERROR') throw new ZmtpError(`peer refused the handshake: ${cmd.data.toString('latin1', 1)}`);
        if (cmd.name !== 'READY') throw new ZmtpError(`expected READY, got ${cmd.name}`);
        const peer = (cmd.properties.get('socket-type') ?? '').toUpperCase();
        if (!PEERS[this.type].includes(peer)) throw new ZmtpError(`a ${this.type} cannot talk to a ${peer || 'untyped'} socket`);
        this.state = 'ready';
        this.lastProblem = '';
        this.reconnectMs = RECONNECT_MS;
        this.socket!.setTimeout(0);
        if (this.paused) this.socket!.pause();
        this.events.ready();
      } else if (cmd.name === 'PING') {
        this.socket!.write(encodePong(cmd));
      } else if (cmd.name === 'SUBSCRIBE' || cmd.name === 'CANCEL') {
        // ZMTP 3.1 subscriptions: handed on as the 3.0 message form.
        this.events.message(Buffer.concat([Buffer.from([cmd.name === 'SUBSCRIBE' ? 1 : 0]), cmd.data]));
      }
      return;
    }
    if (this.state !== 'ready') throw new ZmtpError('message before the handshake finished');
    // Only the first frame of a message is a Mongrel2 message; later parts are skipped.
    if (!this.inMultipart) this.events.message(body);
    this.inMultipart = more;
  };

  private onClose(socket: net.Socket): void {
    if (this.socket !== socket) return;
    this.socket = null;
    const wasReady = this.state === 'ready';
    this.state = 'connecting';
    if (wasReady) this.events.down();
    if (this.borrowed) this.closed = true;
    if (this.closed) return;
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.closed) return;
    const delay = this.reconnectMs + Math.floor(Math.random() * this.reconnectMs);
    this.reconnectMs = Math.min(this.reconnectMs * 2, RECONNECT_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, delay);
  }

  /** A peer that keeps failing the same way is reported once, until a handshake succeeds. */
  private report(e: Error): void {
    if (e.message !== this.lastProblem) this.events.problem(e);
    this.lastProblem = e.message;
  }
}

/**
 * Stop libuv reading now. Readable.pause() alone only stops 'data' events: the stream
 * goes on reading into its buffer (and a handle sent to another process while libuv
 * still reads would drop what it reads: child_process sets its onread to a no-op).
 */
function stopReading(socket: net.Socket): void {
  socket.pause();
  const handle = (socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number } | null })._handle;
  if (handle && typeof handle.readStop === 'function') {
    handle.reading = false;
    handle.readStop();
  }
}

/**
 * Read again after stopReading(). resume() alone may not: the stream still believes a read
 * it asked for is pending (its read() above), and asks libuv for none until data comes.
 */
function startReading(socket: net.Socket): void {
  socket.resume();
  const handle = (socket as unknown as { _handle?: { reading?: boolean; readStart?: () => number } | null })._handle;
  if (handle && handle.reading === false && typeof handle.readStart === 'function') {
    handle.reading = true;
    handle.readStart();
  }
}

/** tcp://host:port (host may be [v6]) or ipc://path, as config/addresses.ts accepts them. */
export function connectOptions(endpoint: string): net.NetConnectOpts {
  if (endpoint.startsWith('ipc://')) {
    // libzmq spells a Linux abstract socket "ipc://@name" and binds exactly the name's
    // length; Node (libuv) connects to "\0name" padded to the whole sun_path, a different
    // abstract address, so the connection is refused forever. Say so instead.
    const p = endpoint.slice('ipc://'.length);
    if (p.startsWith('@')) throw new Error(`${endpoint}: abstract ipc sockets cannot be reached from Node; give Mongrel2 a socket path`);
    return { path: p };
  }
  if (!endpoint.startsWith('tcp://')) throw new Error(`unsupported endpoint ${endpoint}`);
  const hostPort = endpoint.slice('tcp://'.length);
  const colon = hostPort.lastIndexOf(':');
  let host = hostPort.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(hostPort.slice(colon + 1)) };
}
