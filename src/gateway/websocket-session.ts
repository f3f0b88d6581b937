/**
 * One proxied WebSocket: the client half through Mongrel2, the upstream half an
 * UpstreamTunnel. Mongrel2 hands us each complete client message (METHOD WEBSOCKET,
 * FLAGS = first frame byte, body unmasked) and writes whatever bytes we send verbatim,
 * so frames toward the client are built here; PROTOCOL.md §5.
 *
 * Life: handshake (the Upgrade request is with the upstream) → open (frames both ways)
 * → ended (a close was relayed, a side dropped, or a limit hit). `onEnded` is called
 * exactly once, with everything the access line and metrics need.
 *
 * Promises:
 * - toward the client, frames go through the ClientConnection, so download.flow_control
 *   credits apply; upstream reads pause while the connection holds more than HIGH_WATER,
 *   whatever filled it: data frames, or pings and pongs (a client that pings and reads
 *   nothing fills it with the upstream's automatic pongs);
 * - toward the upstream, messages and pings/pongs alike are bounded (upstream-tunnel.ts):
 *   past the bound the WebSocket closes with 1008;
 * - a close from either side reaches the other with its code and reason, then both close;
 *   an upstream that drops gets the client a 1011 and Mongrel2's close;
 * - the client is pinged when silent for ping_interval and closed (1001) when a ping goes
 *   unanswered as long, never inside a relayed frame; our pings' pongs are not forwarded
 *   (websocket-keepalive.ts);
 * - after the client disconnects the upstream socket gets a close frame and FIN at once
 *   and is destroyed within a second.
 */
import type { Duplex } from 'node:stream';
import { ClientGoneError, M2gwError, UpstreamError, asM2gwError, type WebSocketProtocolError } from '../errors.js';
import type { HeaderList, RequestAbort, ResponseController, ResponseSink } from '../upstream/upstream.js';
import { CLOSE_CODE, OPCODE, encodeClosePayload, encodeFrame, encodeFrameHead, parseClosePayload, type FrameHead } from '../websocket/frame.js';
import { UpstreamTunnel, type SendResult } from '../websocket/upstream-tunnel.js';
import { HIGH_WATER, type ClientConnection } from './client-connection.js';
import { ResponseWriter, type ResponseOutcome } from './response-writer.js';
import { clientSwitchingHead } from './websocket-handshake.js';
import { ClientKeepAlive } from './websocket-keepalive.js';

export type ClosedBy = 'client' | 'upstream' | 'm2gw';

export interface WebSocketLimits {
  readonly pingIntervalMs: number;
  readonly maxMessageBytes: number;
  readonly idleTimeoutMs: number;
}

/** What a finished WebSocket reports (access line, metrics). */
export interface WebSocketReport {
  readonly requestId: string;
  readonly uri: string;
  readonly upstream: string;
  /** 101 when it opened, else the HTTP status the handshake got. */
  readonly status: number;
  readonly durationMs: number;
  readonly messagesToUpstream: number;
  readonly bytesToUpstream: number;
  readonly messagesToClient: number;
  readonly bytesToClient: number;
  /** The close code relayed or sent (1006: a side dropped without one); null when it never opened. */
  readonly closeCode: number | null;
  readonly closedBy: ClosedBy | null;
  readonly error: M2gwError | null;
}

export interface SessionHooks {
  onOpened(session: WebSocketSession): void;
  onMessage(direction: 'to-upstream' | 'to-client', bytes: number): void;
  onEnded(session: WebSocketSession, report: WebSocketReport): void;
}

type State = 'handshake' | 'open' | 'ended';

export class WebSocketSession implements ResponseSink {
  readonly key: string;
  readonly conn: ClientConnection;
  private readonly requestId: string;
  private readonly uri: string;
  private readonly upstreamName: string;
  private readonly clientKey: string;
  private readonly limits: WebSocketLimits;
  private readonly hooks: SessionHooks;
  private readonly abort: RequestAbort;
  private readonly started = performance.now();
  private state: State = 'handshake';
  private writer: ResponseWriter;
  private tunnel: UpstreamTunnel | null = null;
  private readonly keepAlive: ClientKeepAlive;
  /** A frame toward the client is half written (its head went, payload still coming). */
  private midFrame = false;
  /** Upstream reads are paused until the client's queue drains. */
  private held = false;
  private messagesIn = 0;
  private bytesIn = 0;
  private messagesOut = 0;
  private bytesOut = 0;

  constructor(opts: {
    key: string;
    conn: ClientConnection;
    requestId: string;
    uri: string;
    upstreamName: string;
    clientKey: string;
    limits: WebSocketLimits;
    hooks: SessionHooks;
    abort: RequestAbort;
  }) {
    this.key = opts.key;
    this.conn = opts.conn;
    this.requestId = opts.requestId;
    this.uri = opts.uri;
    this.upstreamName = opts.upstreamName;
    this.clientKey = opts.clientKey;
    this.limits = opts.limits;
    this.hooks = opts.hooks;
    this.abort = opts.abort;
    this.keepAlive = new ClientKeepAlive(this.conn, this.limits, () => this.midFrame, (why) => this.closeBoth(CLOSE_CODE.GOING_AWAY, why));
    // The handshake is refused or failed: an ordinary HTTP response, then the connection
    // closes (Mongrel2 already treats it as a WebSocket, so nothing more can follow on it).
    this.writer = new ResponseWriter(
      this.conn,
      { method: 'GET', keepAlive: false, http10: false, requestId: this.requestId, mustClose: true },
      (outcome) => this.handshakeAnswered(outcome),
    );
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Answer the handshake with an error (no route, refused, limits) without asking the upstream. */
  refuse(err: M2gwError): void {
    this.writer.onResponseError(err, true);
  }

  // ---- handshake: the upstream's answer (ResponseSink) ------------------------------

  onResponseStart(ctl: ResponseController, status: number, headers: HeaderList, reason?: string): void {
    this.writer.onResponseStart(ctl, status, headers, reason);
  }

  onResponseData(ctl: ResponseController, chunk: Buffer): void {
    this.writer.onResponseData(ctl, chunk);
  }

  onResponseEnd(ctl: ResponseController): void {
    this.writer.onResponseEnd(ctl);
  }

  onResponseError(err: M2gwError): void {
    this.writer.onResponseError(err, true);
  }

  onResponseUpgrade(status: number, headers: HeaderList, socket: Duplex): void {
    if (this.state !== 'handshake' || this.conn.finished) {
      socket.destroy();
      // A client gone unannounced still ends the handshake: its report gives back the max_websockets slot.
      if (this.state === 'handshake') this.onResponseError(new ClientGoneError('request-sent', 'client gone before the upgrade'));
      return;
    }
    const head = clientSwitchingHead(this.upstreamName, this.clientKey, status, headers);
    if (head instanceof UpstreamError) {
      socket.destroy();
      return this.onResponseError(head);
    }
    this.state = 'open';
    this.conn.write(head, true);
    this.tunnel = new UpstreamTunnel(
      socket,
      // One whole message may always wait; beyond that, an upstream that does not read is
      // a policy violation (nginx would buffer without bound; we close with 1008).
      { maxMessageBytes: this.limits.maxMessageBytes, maxQueuedBytes: this.limits.maxMessageBytes + HIGH_WATER },
      {
        onDataStart: (h) => this.upstreamDataStart(h),
        onDataPayload: (c) => this.toClient(c),
        onDataEnd: () => {
          this.midFrame = false;
          this.keepAlive.frameEnded();
          this.conn.flushSoon();
        },
        onControl: (op, payload) => this.upstreamControl(op, payload),
        onProtocolError: (e) => this.upstreamProtocolError(e),
        onClosed: () => this.upstreamClosed(),
      },
    );
    this.keepAlive.start();
    this.hooks.onOpened(this);
  }

  private handshakeAnswered(outcome: ResponseOutcome): void {
    if (this.state !== 'handshake') return;
    this.state = 'ended';
    this.report(outcome.status, null, null, outcome.error);
  }

  // ---- client → upstream ------------------------------------------------------------

  /** One complete client message from Mongrel2 (`flags` = its first frame byte). */
  onClientMessage(flags: number, body: Buffer): void {
    if (this.state !== 'open') return;
    const opcode = flags & 0x0f;
    const now = Date.now();
    this.keepAlive.fromClient(now);
    switch (opcode) {
      case OPCODE.TEXT:
      case OPCODE.BINARY: {
        this.keepAlive.message(now);
        this.messagesIn++;
        this.bytesIn += body.length;
        this.hooks.onMessage('to-upstream', body.length);
        return this.sent(this.tunnel!.sendMessage(opcode, body));
      }
      case OPCODE.PING:
        return this.sent(this.tunnel!.sendControl(OPCODE.PING, body.subarray(0, 125)));
      case OPCODE.PONG:
        if (this.keepAlive.answersOurPing(body)) return;
        return this.sent(this.tunnel!.sendControl(OPCODE.PONG, body.subarray(0, 125)));
      case OPCODE.CLOSE:
        return this.clientClose(body);
      default:
        // Mongrel2 reassembles fragments, so a bare continuation or unknown opcode is broken input.
        this.closeBoth(CLOSE_CODE.PROTOCOL_ERROR, `unexpected opcode 0x${opcode.toString(16)}`);
    }
  }

  private sent(result: SendResult): void {
    if (result === 'too-big') this.closeBoth(CLOSE_CODE.MESSAGE_TOO_BIG, `message over ${this.limits.maxMessageBytes} bytes`);
    else if (result === 'queue-full') this.closeBoth(CLOSE_CODE.POLICY_VIOLATION, 'upstream is not reading');
  }

  private clientClose(payload: Buffer): void {
    let code: number;
    let reason: string;
    try {
      ({ code, reason } = parseClosePayload(payload));
    } catch (err) {
      const e = err as WebSocketProtocolError;
      return this.closeBoth(e.closeCode, e.message);
    }
    // Relay the client's close as it came; answer it (the client waits for our close) and
    // let Mongrel2 close the connection after that frame.
    this.tunnel!.close(code, reason, payload);
    if (!this.midFrame) this.conn.write(encodeFrame(OPCODE.CLOSE, payload), true);
    this.conn.close();
    this.end(code, 'client', null);
  }

  /** The client's TCP connection is gone (Mongrel2's disconnect message). */
  clientGone(): void {
    if (this.state === 'handshake') {
      const err = new ClientGoneError('request-sent', 'client disconnected during the handshake');
      this.abort.abort(err);
      this.writer.onResponseError(err);
      return;
    }
    if (this.state !== 'open') return;
    this.conn.abandon();
    this.tunnel!.close(CLOSE_CODE.GOING_AWAY, 'client gone');
    this.end(CLOSE_CODE.ABNORMAL, 'client', null);
  }

  // ---- upstream → client ------------------------------------------------------------

  private upstreamDataStart(head: FrameHead): void {
    // After the end (client gone, close relayed) the upstream may still send until its socket
    // closes: nothing of it is for the client, nor for the counters.
    if (this.state !== 'open') return;
    // Frames go to the client as the upstream framed them (fragmentation kept).
    this.conn.write(encodeFrameHead(head.fin, head.opcode, head.length));
    this.midFrame = head.length > 0;
    if (head.first) {
      this.messagesOut++;
      this.keepAlive.message(Date.now());
    }
    if (head.length === 0) this.conn.flushSoon();
  }

  private toClient(chunk: Buffer): void {
    if (this.state !== 'open') return;
    this.bytesOut += chunk.length;
    this.hooks.onMessage('to-client', chunk.length);
    this.conn.write(chunk);
    this.holdUpstreamWhileQueued();
  }

  /** Past HIGH_WATER queued for the client, the upstream is not read until the queue drains. */
  private holdUpstreamWhileQueued(): void {
    if (this.held || this.conn.queuedBytes <= HIGH_WATER) return;
    this.held = true;
    const tunnel = this.tunnel!;
    tunnel.pause();
    this.conn.whenDrained(() => {
      this.held = false;
      tunnel.resume();
    });
  }

  private upstreamControl(opcode: number, payload: Buffer): void {
    if (this.state !== 'open') return;
    if (opcode !== OPCODE.CLOSE) {
      this.conn.write(encodeFrame(opcode, payload), true);
      return this.holdUpstreamWhileQueued();
    }
    const { code } = parseClosePayload(payload); // validated by the decoder
    this.conn.write(encodeFrame(OPCODE.CLOSE, payload), true);
    this.conn.close();
    // Answer the upstream's close so its closing handshake completes.
    this.tunnel!.close(code, '', payload);
    this.end(code, 'upstream', null);
  }

  private upstreamProtocolError(err: WebSocketProtocolError): void {
    if (this.state !== 'open') return;
    const code = err.closeCode === CLOSE_CODE.MESSAGE_TOO_BIG ? CLOSE_CODE.MESSAGE_TOO_BIG : CLOSE_CODE.INTERNAL_ERROR;
    this.closeClient(code, code === CLOSE_CODE.MESSAGE_TOO_BIG ? 'message too big' : 'upstream protocol error');
    this.end(code, 'upstream', asM2gwError(err, 'headers-sent'));
  }

  private upstreamClosed(): void {
    if (this.state !== 'open') return;
    // Dropped without a close frame: the client learns it as 1011, then the connection closes.
    this.closeClient(CLOSE_CODE.INTERNAL_ERROR, 'upstream connection lost');
    this.end(CLOSE_CODE.ABNORMAL, 'upstream', new UpstreamError('M2GW_UPSTREAM_RESET', `upstream ${this.upstreamName} dropped the WebSocket`, 'headers-sent'));
  }

  // ---- m2gw's own decisions ---------------------------------------------------------

  /** Close both sides with one code (limits, shutdown). */
  closeBoth(code: number, reason: string): void {
    if (this.state !== 'open') return;
    this.closeClient(code, reason);
    this.tunnel!.close(code, reason);
    this.end(code, 'm2gw', null);
  }

  /** Shutdown: open sockets get 1001, a handshake in progress gets 503. */
  shutdown(): void {
    if (this.state === 'handshake') {
      const err = new M2gwError('M2GW_SHUTTING_DOWN', 'gateway stopped', 'request-sent');
      this.abort.abort(err);
      this.writer.onResponseError(err, true);
    } else {
      this.closeBoth(CLOSE_CODE.GOING_AWAY, 'server going away');
    }
  }

  private closeClient(code: number, reason: string): void {
    // A close frame in the middle of a relayed frame would be read as its payload: then the
    // only clean signal left is closing the connection (the client sees 1006).
    if (!this.midFrame) this.conn.write(encodeFrame(OPCODE.CLOSE, encodeClosePayload(code, reason)), true);
    this.conn.close();
  }

  private end(code: number, by: ClosedBy, error: M2gwError | null): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.keepAlive.stop();
    this.report(101, code, by, error);
  }

  private report(status: number, closeCode: number | null, closedBy: ClosedBy | null, error: M2gwError | null): void {
    this.hooks.onEnded(this, {
      requestId: this.requestId,
      uri: this.uri,
      upstream: this.upstreamName,
      status,
      durationMs: performance.now() - this.started,
      messagesToUpstream: this.messagesIn,
      bytesToUpstream: this.bytesIn,
      messagesToClient: this.messagesOut,
      bytesToClient: this.bytesOut,
      closeCode,
      closedBy,
      error,
    });
  }
}
