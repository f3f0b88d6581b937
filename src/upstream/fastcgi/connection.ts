/**
 * One FastCGI connection to PHP-FPM (TCP or unix socket), kept alive with FCGI_KEEP_CONN.
 * Writes requests (a request's records in one write), decodes responses and routes them to
 * the job by record id, and keeps the timeouts: connect, first byte (response timeout),
 * silence between reads or writes (idle timeout), and an idle pooled connection's lifetime.
 *
 * PHP-FPM serves one request at a time per connection and reads the next one only when done,
 * so requests may be written ahead (pipelined) and come back strictly in order. A record for any
 * request but the one being served is a protocol error: an app that multiplexes (Go's
 * net/http/fcgi does) would get that output past its pause and stop the head's first-byte clock.
 * The connection decides nothing about retries: when it closes it hands its unfinished jobs,
 * each with an error, to its owner (the pool), with what it saw of them and of the close.
 *
 * It is generic over its owner's job type and never writes a job (see job.ts for who changes
 * what); its own state per job lives in its Slots.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { M2gwError, UpstreamError } from '../../errors.js';
import { describeAddress, type FcgiAddress } from './address.js';
import type { CloseInfo, ConnectionJob, Unfinished } from './job.js';
import { RecordDecodeError, RecordDecoder } from './record-decoder.js';
import { setRecordId, stdinRecords } from './records.js';
import { streamFileAsStdin, type StdinFileStream } from './stdin-file.js';
import { streamBodyAsStdin } from './stdin-stream.js';

/**
 * PHP-FPM closes a kept connection when its child reaches pm.max_requests: END_REQUEST, the
 * rest of its request shutdown, then FIN (measured 30 µs to 8 ms apart). A FIN this soon after
 * an END_REQUEST is taken as that recycling, not as a crash (CloseInfo.recycledByPeer).
 */
const RECYCLE_WINDOW_MS = 50;

/** How long a politely closed connection waits for PHP-FPM's FIN before it is destroyed. */
const END_GRACE_MS = 2000;

export interface ConnectionTimeouts {
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/** The connection's own state for one job; recycled, never seen outside. */
interface Slot<J> {
  job: J;
  recordId: number;
  /** Some record for it arrived (its first-byte clock stopped). */
  answered: boolean;
  reusedConnection: boolean;
  /** performance.now() when written. */
  writtenAt: number;
}

export interface ConnectionOwner<J extends ConnectionJob> {
  connected(conn: FcgiConnection<J>): void;
  /** The job got its END_REQUEST and is off the connection. */
  jobDone(conn: FcgiConnection<J>, job: J): void;
  /** A streamed body finished writing: the connection may take pipelined requests again. */
  bodySent(conn: FcgiConnection<J>): void;
  /** The connection is gone. `unfinished` lists the jobs still on it, in order. */
  closed(conn: FcgiConnection<J>, unfinished: Array<Unfinished<J>>, info: CloseInfo): void;
}

type TimerKind = 'none' | 'connect' | 'pool-idle' | 'first-byte' | 'read-idle' | 'write-idle';

export class FcgiConnection<J extends ConnectionJob> {
  readonly socket: net.Socket;
  /** Jobs written and not finished, in the order PHP-FPM will serve them. */
  private readonly slots: Array<Slot<J>> = [];
  /** Slots of finished jobs, for the next ones (no allocation per request). */
  private readonly spare: Array<Slot<J>> = [];
  /** END_REQUESTs received: > 0 means this connection has been reused. */
  private served = 0;
  private isConnected = false;
  private isClosed = false;
  /** No further requests go on this connection (peer FIN, protocol doubt, closing). */
  private noReuse = false;
  private readPaused = false;
  private bodyStream: StdinFileStream | null = null;
  private writingBodyOf: J | null = null;
  private timerKind: TimerKind = 'none';
  private lastEndAt = 0;
  private peerEndAt = 0;
  /** Why the connection is being torn down, with the job it concerns (null: all alike). */
  private failure: { error: UpstreamError; job: J | null } | null = null;
  /** Errors that belong to one job only (its body file could not be read). */
  private readonly jobErrors = new Map<J, UpstreamError>();
  private readonly decoder: RecordDecoder;

  constructor(
    readonly address: FcgiAddress,
    private readonly timeouts: ConnectionTimeouts,
    private readonly owner: ConnectionOwner<J>,
  ) {
    this.decoder = new RecordDecoder({
      onStdout: (id, data) => this.jobFor(id)?.request.onStdout(data),
      onStderr: (id, data) => this.jobFor(id)?.request.onStderr(data),
      onEndRequest: (id, appStatus, protocolStatus) => this.endRequest(id, appStatus, protocolStatus),
      onRecord: (type) => {
        this.fail(new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `unexpected FastCGI record type ${type}`, 'request-sent'));
      },
    });
    this.socket =
      address.kind === 'unix' ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
    this.socket.setNoDelay(true);
    this.setTimer('connect');
    this.socket.on('connect', () => {
      this.isConnected = true;
      this.updateTimer();
      this.owner.connected(this);
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('end', () => {
      // PHP-FPM closed its side (pm.max_requests, reload, idle kill). Node ends ours too.
      this.noReuse = true;
      this.peerEndAt = performance.now();
    });
    this.socket.on('timeout', () => this.onTimeout());
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.failure !== null) return;
      const phase = this.isConnected ? 'request-sent' : 'connect';
      const code = this.isConnected ? 'M2GW_UPSTREAM_RESET' : 'M2GW_UPSTREAM_CONNECT';
      const error = new UpstreamError(code, `FastCGI ${describeAddress(address)}: ${err.code ?? err.message}`, phase, { cause: err });
      this.failure = { error, job: null };
    });
    this.socket.on('close', () => this.onClose());
  }

  /** Idle and reusable: no jobs and nothing known wrong. */
  get idle(): boolean {
    return this.slots.length === 0 && this.reusable;
  }

  /** Jobs on the connection (being served, or written behind). */
  get depth(): number {
    return this.slots.length;
  }

  /** When the job being served was written (performance.now()), 0 when there is none. */
  get headWrittenAt(): number {
    return this.slots[0]?.writtenAt ?? 0;
  }

  get reusable(): boolean {
    return !this.isClosed && !this.noReuse && !this.socket.destroyed && !this.socket.readableEnded;
  }

  /** Can take one more pipelined request now (the caller checks the depth). */
  get acceptsPipelined(): boolean {
    return this.reusable && this.writingBodyOf === null;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Writes a request. The socket buffers it until connected. */
  start(job: J): void {
    const id = this.freeId();
    const head = job.request.head;
    if (id !== ((head[2]! << 8) | head[3]!)) setRecordId(head, id);
    const reusedConnection = this.served > 0 || this.slots.length > 0;
    const slot = this.spare.pop();
    if (slot === undefined) {
      this.slots.push({ job, recordId: id, answered: false, reusedConnection, writtenAt: performance.now() });
    } else {
      slot.job = job;
      slot.recordId = id;
      slot.answered = false;
      slot.reusedConnection = reusedConnection;
      slot.writtenAt = performance.now();
      this.slots.push(slot);
    }
    const body = job.request.separateBody;
    // The requests of one tick leave in one write: a burst pipelined onto one child costs one
    // system call and one wake-up of it (on loopback the sender's write runs the receiver's
    // TCP and wakes it; that was half a worker's CPU per PHP request, bench/README.md).
    if (this.socket.writableCorked === 0) {
      this.socket.cork();
      process.nextTick(uncork, this.socket);
    }
    if (body === null) {
      this.socket.write(head);
    } else if (body.kind === 'buffer') {
      // Large in-memory body: in the same writev (corked above), the payload referenced rather than copied.
      this.socket.write(head);
      for (const b of stdinRecords(id, body.data, true)) this.socket.write(b);
    } else {
      this.socket.write(head);
      this.writingBodyOf = job;
      const events = {
        done: (): void => {
          this.bodyStream = null;
          if (this.writingBodyOf !== job) return;
          this.writingBodyOf = null;
          this.updateTimer();
          this.owner.bodySent(this);
        },
        failed: (err: Error): void => {
          this.bodyStream = null;
          // A streamed body fails with the gateway's own error (client gone, too large): keep it.
          const mapped = err instanceof M2gwError ? new UpstreamError(err.code, err.message, err.phase, { cause: err }) : new UpstreamError('M2GW_INTERNAL', `request body ${body.kind === 'file' ? body.path : ''}: ${err.message}`, 'request-sent', { cause: err });
          this.jobErrors.set(job, mapped);
          this.destroy();
        },
      };
      this.bodyStream =
        body.kind === 'file' ? streamFileAsStdin(this.socket, id, body.path, body.length, events) : streamBodyAsStdin(this.socket, id, body.stream, events);
    }
    if (this.slots.length === 1) this.updateTimer();
  }

  /** Stops reading responses (the sink is full). Only the job being served can pause. */
  pauseReading(job: J): void {
    if (this.slots[0]?.job !== job || this.readPaused || this.isClosed) return;
    this.readPaused = true;
    this.decoder.pause();
    this.socket.pause();
    this.updateTimer();
  }

  resumeReading(job: J): void {
    if (this.slots[0]?.job !== job || !this.readPaused) return;
    this.readPaused = false;
    this.decoder.resume();
    if (this.readPaused || this.isClosed) return;
    this.socket.resume();
    this.updateTimer();
  }

  /** True when `job` is being served or is still sending its body: PHP may have started it. */
  isActive(job: J): boolean {
    return this.slots[0]?.job === job || this.writingBodyOf === job;
  }

  /** Takes a job off and closes the connection: the way to abort a request PHP is running. */
  abort(job: J, error: UpstreamError): void {
    const i = this.slots.findIndex((s) => s.job === job);
    if (i !== -1) this.slots.splice(i, 1);
    // Tagged with the aborted job, so the others on this connection get a plain reset.
    this.fail(error, job);
  }

  /** Closes now. Unfinished jobs are handed to the owner with `error` (or a reset). */
  destroy(error?: UpstreamError): void {
    if (this.isClosed) return;
    this.noReuse = true;
    if (error !== undefined && this.failure === null) this.failure = { error, job: null };
    this.bodyStream?.destroy();
    this.bodyStream = null;
    this.socket.destroy();
  }

  /** Closes politely once no job is left (forcibly if PHP-FPM does not close its side soon). */
  end(): void {
    this.noReuse = true;
    if (this.slots.length > 0 || this.isClosed || this.socket.writableEnded) return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
  }

  // -------------------------------------------------------------------------------------------

  private freeId(): number {
    let id = 1;
    while (this.slots.some((s) => s.recordId === id)) id++;
    return id;
  }

  private jobFor(id: number): J | null {
    const head = this.slots[0];
    if (head === undefined || head.recordId !== id) {
      this.fail(new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `FastCGI record for record id ${id}, not the request being served`, 'request-sent'));
      return null;
    }
    head.answered = true;
    return head.job;
  }

  private onData(chunk: Buffer): void {
    const wasWaiting = this.timerKind === 'first-byte';
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (err instanceof RecordDecodeError) {
        this.fail(new UpstreamError('M2GW_UPSTREAM_PROTOCOL', err.message, 'request-sent', { cause: err }));
      } else {
        // A callback threw: that request is broken, the connection's state unknown.
        const e = err instanceof Error ? err : new Error(String(err));
        this.fail(new UpstreamError('M2GW_INTERNAL', `handling a FastCGI response: ${e.message}`, 'request-sent', { cause: e }), this.slots[0]?.job ?? null);
      }
      return;
    }
    if (wasWaiting && !this.isClosed) this.updateTimer();
  }

  private endRequest(id: number, appStatus: number, protocolStatus: number): void {
    const slot = this.slots[0];
    if (slot === undefined || slot.recordId !== id) {
      this.fail(new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `END_REQUEST for record id ${id}, not the request being served`, 'request-sent'));
      return;
    }
    const job = slot.job;
    this.slots.shift();
    this.spare.push(slot);
    this.served++;
    this.lastEndAt = performance.now();
    if (this.writingBodyOf === job) {
      // PHP answered before reading the whole body: the rest would be read as the next request.
      this.noReuse = true;
      this.bodyStream?.destroy();
      this.bodyStream = null;
      this.writingBodyOf = null;
    }
    if (this.readPaused) {
      // The pause belonged to the finished job; the next one starts unpaused.
      this.readPaused = false;
      this.decoder.resume();
      this.socket.resume();
    }
    job.request.onEnd(appStatus, protocolStatus);
    if (this.noReuse && this.slots.length === 0) this.socket.destroy();
    else this.updateTimer();
    this.owner.jobDone(this, job);
  }

  private fail(error: UpstreamError, job: J | null = null): void {
    if (this.failure === null) this.failure = { error, job };
    this.destroy();
  }

  private onTimeout(): void {
    const head = this.slots[0]?.job ?? null;
    switch (this.timerKind) {
      case 'connect':
        this.fail(new UpstreamError('M2GW_UPSTREAM_TIMEOUT', `FastCGI connect to ${describeAddress(this.address)} timed out`, 'connect'));
        return;
      case 'pool-idle':
        this.end();
        return;
      case 'first-byte':
        this.fail(new UpstreamError('M2GW_UPSTREAM_TIMEOUT', `no response from PHP within ${this.timeouts.responseTimeoutMs} ms`, 'request-sent'), head);
        return;
      case 'read-idle':
      case 'write-idle':
        this.fail(new UpstreamError('M2GW_UPSTREAM_TIMEOUT', `PHP connection silent for ${this.timeouts.idleTimeoutMs} ms`, 'request-sent'), head);
        return;
      case 'none':
        return;
    }
  }

  private updateTimer(): void {
    if (this.isClosed) return;
    let kind: TimerKind;
    if (!this.isConnected) kind = 'connect';
    else if (this.readPaused) kind = 'none';
    else if (this.slots.length === 0) kind = 'pool-idle';
    else if (this.writingBodyOf === this.slots[0]!.job) kind = 'write-idle';
    else if (!this.slots[0]!.answered) kind = 'first-byte';
    else kind = 'read-idle';
    // A new job at the head restarts its first-byte clock even when the kind stays the same.
    if (kind !== this.timerKind || kind === 'first-byte') this.setTimer(kind);
  }

  private setTimer(kind: TimerKind): void {
    this.timerKind = kind;
    const t = this.timeouts;
    const ms = kind === 'connect' ? t.connectTimeoutMs : kind === 'first-byte' ? t.responseTimeoutMs : kind === 'none' ? 0 : t.idleTimeoutMs;
    this.socket.setTimeout(ms);
  }

  private onClose(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.noReuse = true;
    this.bodyStream?.destroy();
    this.bodyStream = null;
    const failure = this.failure;
    const where = describeAddress(this.address);
    const generic = this.isConnected
      ? new UpstreamError('M2GW_UPSTREAM_RESET', `PHP-FPM closed the connection (${where})`, 'request-sent')
      : new UpstreamError('M2GW_UPSTREAM_CONNECT', `cannot connect to ${where}`, 'connect');
    const unfinished = this.slots.splice(0).map(({ job, answered, reusedConnection }) => {
      const own = this.jobErrors.get(job);
      const error = own ?? (failure !== null && (failure.job === null || failure.job === job) ? failure.error : generic);
      return { job, error, answered, reusedConnection };
    });
    const recycledByPeer =
      failure === null && this.peerEndAt > 0 && this.lastEndAt > 0 && this.peerEndAt - this.lastEndAt <= RECYCLE_WINDOW_MS;
    this.owner.closed(this, unfinished, { wasConnected: this.isConnected, recycledByPeer });
  }
}

function uncork(socket: net.Socket): void {
  socket.uncork();
}
