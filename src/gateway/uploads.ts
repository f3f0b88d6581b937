/**
 * Mongrel2's async-upload protocol. For a body above `limits.content_length` (with
 * `upload.temp_store` set) Mongrel2 sends the request twice: an upload-start message
 * (headers, empty body) when it begins writing the body to a temp file, and an
 * upload-done message once the file is complete.
 * This module turns those two messages into one Pending request whose body is the file.
 *
 * Security: the x-mongrel2-upload-* headers are ordinary request headers, so a client can
 * forge them. Mongrel2 overwrites them only on real uploads (Upload_notify, replace = 1), so:
 * - a start is believed only where Mongrel2 itself would have sent one (isGenuineUploadStart
 *   mirrors its parser exactly); a client's own done header on such a start is ignored;
 * - a done is believed only when it names the start we believed on this connection, or an
 *   upload we refused (remembered across the close of its connection, bounded);
 * - only files whose start we believed are ever read or deleted, and they are opened safely
 *   (upload-file.ts: no symlinks, one link, a trusted owner, read through the open fd).
 * Paths are Mongrel2's, relative to its chroot, and are resolved so they cannot leave it.
 *
 * Promises: every refusal of an upload start closes the connection (Mongrel2 would otherwise
 * keep writing the body); an accepted upload holds its place in the connection's pipeline from
 * its start (requests pipelined after it are answered after it); every temp file of an upload
 * we accepted or refused is deleted once we are done with it (by the gateway after the request,
 * by the pipeline if the request is dropped, or here, also when its done message comes after
 * its connection closed). This module is the only writer of ConnState.uploadPath and uploadCheck.
 */
import path from 'node:path';
import { M2gwError } from '../errors.js';
import type { WarningThrottle } from '../log-throttle.js';
import { recordLimitHit } from '../metrics/limit-hits.js';
import { headerFirst, uploadPathMatches, type HeaderValue, type Mongrel2Request } from '../mongrel2/request.js';
import { discardBodyFile, unlinkQuietly, type ConnectionTable, type ConnState, type HandlerRuntime } from './connections.js';
import { MAX_REFUSED_UPLOADS, MAX_UPLOAD_STATES, REFUSED_UPLOAD_TTL_MS } from './limits.js';
import { readRequestLine } from './request-builder.js';
import type { Router } from './router.js';
import { openUpload } from './upload-file.js';
import type { Pipeline } from './pipeline.js';

export { unlinkQuietly } from './connections.js';

export class Uploads {
  private readonly warnings: WarningThrottle;
  private readonly router: Router;
  private readonly conns: ConnectionTable;
  private readonly pipeline: Pick<Pipeline, 'enqueue' | 'fill'>;
  /** Connections between a believed start and its done (stale entries pruned when full). */
  private readonly inProgress = new Set<ConnState>();
  /** "handler:path" of uploads we refused → when, so a late done message deletes the file. */
  private readonly refused = new Map<string, { connId: string; at: number }>();

  constructor(warnings: WarningThrottle, router: Router, conns: ConnectionTable, pipeline: Pick<Pipeline, 'enqueue' | 'fill'>) {
    this.warnings = warnings;
    this.router = router;
    this.conns = conns;
    this.pipeline = pipeline;
  }

  /** An accepted upload's place in its connection's pipeline was dropped (the connection closed before its done). */
  uploadDropped(state: ConnState, uploadPath: string): void {
    if (state.uploadPath === uploadPath) {
      state.uploadPath = null;
      this.inProgress.delete(state);
    }
    // Its done message may still come (Mongrel2 had the whole body): it then deletes the file.
    this.remember(state, uploadPath);
  }

  /** Uploads refused whose done message may still come (for busy-connection checks and tests). */
  get refusedCount(): number {
    return this.refused.size;
  }

  /**
   * A message carrying x-mongrel2-upload-start and/or -done: Mongrel2's start or done, or a
   * forgery. Connection state is created only for a message that will be answered: a late done
   * of a refused upload comes after its connection closed, and must not leave a state behind.
   */
  onMessage(handler: HandlerRuntime, req: Mongrel2Request, key: string): void {
    const start = headerFirst(req.headers, 'x-mongrel2-upload-start') ?? null;
    const done = headerFirst(req.headers, 'x-mongrel2-upload-done') ?? null;
    const known = this.conns.get(key);
    const live = known !== undefined && !known.conn.finished ? known : null;
    const uploadPath = live?.uploadPath ?? null;
    // Mongrel2's done message repeats the start path in both headers. A start is never shaped
    // so: its path is mkstemp's, unknown to a client until the start message is sent.
    if (start !== null && done === start) {
      if (live !== null && uploadPath === start) {
        void this.onDone(live, req, start);
        return;
      }
      if (this.takeRefused(handler, req.connId, start)) {
        // The body of an upload we refused arrived in full anyway: only the file is left to remove.
        const file = uploadFile(handler, start);
        if (file) void unlinkQuietly(file);
        return;
      }
      if (req.body.length === 0 && uploadPathMatches(handler.config.uploadTempStore, done)) {
        // Shaped like Mongrel2's done but for no upload we know: most likely the late done of an
        // upload refused in another worker or before a restart, on a connection that is closed
        // and whose id Mongrel2 may have given to a new client. An answer would land in that
        // client's stream, so none is sent (a client forging this shape only stalls itself).
        this.warnings.warn('upload done for an unknown upload dropped', { conn: req.connId, path: done.slice(0, 200) });
        return;
      }
    } else if (start !== null && uploadPath === null && isGenuineUploadStart(handler, req, start)) {
      // A done header here is the client's own (Mongrel2 adds its done only to the second message).
      this.onStart(this.conns.stateFor(handler, req, key), req, start);
      return;
    } else if (done === null) {
      // A client-made start header on an ordinary request: serve it as one (never forwarded).
      this.pipeline.enqueue(this.conns.stateFor(handler, req, key), { req, bodyFile: null, refusal: null });
      return;
    }
    const state = this.conns.stateFor(handler, req, key);
    // A done we cannot attribute to a start of ours: a client forging the headers (which must
    // never make us read or delete a file), or an upload whose start we never saw.
    this.warnings.warn('upload done without a matching upload start refused', { conn: req.connId, path: (done ?? '').slice(0, 200) });
    this.pipeline.enqueue(state, { req, bodyFile: null, refusal: new M2gwError('M2GW_BAD_REQUEST', 'upload done without matching start', 'route') });
  }

  /** A start we believe: remember it, or refuse it now (too large, too many) and close. */
  private onStart(state: ConnState, req: Mongrel2Request, uploadPath: string): void {
    const line = readRequestLine(req);
    const route = this.router.match(line.host, line.path);
    const declared = mongrel2ContentLength(req.headers);
    let refusal: M2gwError | null = null;
    if (route && declared > route.maxBodyBytes) {
      refusal = new M2gwError('M2GW_BODY_TOO_LARGE', `request body of ${declared} bytes exceeds max_body ${route.maxBodyBytes}`, 'route');
    } else if (this.inProgressCount() >= MAX_UPLOAD_STATES) {
      recordLimitHit('upload_states');
      refusal = new M2gwError('M2GW_SATURATED', `${MAX_UPLOAD_STATES} uploads in progress`, 'route');
    }
    if (refusal !== null) {
      // Answer now and close, so the client stops sending: Mongrel2 then aborts the upload and
      // deletes the file itself, or, if it already had the whole body, sends a done message,
      // possibly after the close; the remembered path lets that message delete the file.
      this.remember(state, uploadPath);
      this.pipeline.enqueue(state, { req, bodyFile: null, refusal, closeAfter: true });
      return;
    }
    state.uploadPath = uploadPath;
    this.inProgress.add(state);
    this.pipeline.enqueue(state, { req, bodyFile: null, refusal: null, awaitingUpload: uploadPath });
  }

  /** The done message of a start we believed: enqueue the request with the file as its body. */
  private async onDone(state: ConnState, req: Mongrel2Request, uploadPath: string): Promise<void> {
    state.uploadPath = null;
    this.inProgress.delete(state);
    const file = uploadFile(state.handler, uploadPath);
    if (!file) {
      this.warnings.warn('upload path outside the Mongrel2 chroot refused', { conn: req.connId, path: uploadPath.slice(0, 200) });
      this.pipeline.fill(state, uploadPath, { req, bodyFile: null, refusal: new M2gwError('M2GW_BAD_REQUEST', 'upload path outside chroot', 'route') });
      return;
    }
    state.uploadCheck = true;
    let opened;
    try {
      opened = await openUpload(file, path.resolve(state.handler.config.chroot), state.handler.config.uploadOwner ?? null);
    } catch (err) {
      // Mongrel2 made this name, so whatever is there now is removed (unlink never follows a symlink).
      void unlinkQuietly(file);
      this.warnings.warn('upload temp file refused', { conn: req.connId, file, error: String(err) });
      this.pipeline.fill(state, uploadPath, { req, bodyFile: null, refusal: new M2gwError('M2GW_INTERNAL', 'upload file unusable', 'route') });
      return;
    } finally {
      state.uploadCheck = false;
    }
    const bodyFile = { path: file, readPath: opened.readPath, length: opened.length, close: opened.close };
    // Its place is gone when the client disconnected, or the connection closed, while we looked at the file.
    if (!this.conns.isCurrent(state) || !this.pipeline.fill(state, uploadPath, { req, bodyFile, refusal: null })) discardBodyFile(bodyFile);
  }

  private inProgressCount(): number {
    if (this.inProgress.size >= MAX_UPLOAD_STATES) {
      for (const s of this.inProgress) if (s.uploadPath === null || !this.conns.isCurrent(s)) this.inProgress.delete(s);
    }
    return this.inProgress.size;
  }

  private remember(state: ConnState, uploadPath: string): void {
    const now = Date.now();
    for (const [key, r] of this.refused) {
      if (this.refused.size < MAX_REFUSED_UPLOADS && now - r.at < REFUSED_UPLOAD_TTL_MS) break;
      // Oldest first (insertion order). A forgotten one is only a file Mongrel2 left behind.
      if (this.refused.size >= MAX_REFUSED_UPLOADS) recordLimitHit('refused_uploads');
      this.refused.delete(key);
    }
    this.refused.set(`${state.handler.index}:${uploadPath}`, { connId: state.conn.connId, at: now });
  }

  private takeRefused(handler: HandlerRuntime, connId: string, uploadPath: string): boolean {
    const key = `${handler.index}:${uploadPath}`;
    const r = this.refused.get(key);
    if (r === undefined || r.connId !== connId) return false;
    this.refused.delete(key);
    return true;
  }
}

/**
 * Mongrel2's own idea of the body length (src/request.c, header_done_cb): Content-Length read
 * with strtol base 10, and 0 when out of range or negative; without one, -1 (streamed) only for
 * Transfer-Encoding exactly "chunked" (case and all: bstrcmp), else 0. Only the first value of
 * a repeated header counts (Request_get returns entry[0]).
 */
export function mongrel2ContentLength(headers: Readonly<Record<string, HeaderValue>>): number {
  const cl = headerFirst(headers, 'content-length');
  if (cl !== undefined) return strtolLength(cl);
  return headerFirst(headers, 'transfer-encoding') === 'chunked' ? -1 : 0;
}

const INT_MAX = 2 ** 31 - 1;

/** strtol(s, NULL, 10) then Mongrel2's range check: leading C-locale spaces, a sign, digits up to the first other char. */
export function strtolLength(s: string): number {
  let i = 0;
  while (i < s.length && (s.charCodeAt(i) === 0x20 || (s.charCodeAt(i) >= 0x09 && s.charCodeAt(i) <= 0x0d))) i++;
  let negative = false;
  if (s[i] === '+' || s[i] === '-') negative = s[i++] === '-';
  let n = 0;
  for (; i < s.length; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) break;
    // Past INT_MAX the answer is 0 whatever follows (ERANGE or Mongrel2's own range check).
    if (n > INT_MAX) return 0;
    n = n * 10 + d;
  }
  if (negative) return 0;
  return n > INT_MAX ? 0 : n;
}

/**
 * Mongrel2 sends an upload start only for a body it will not inline: a length above
 * limits.content_length, or a streamed (-1) one; its inline bodies are never empty when
 * the length is positive. So a start is believed for an empty body with a positive or
 * streamed length, on a path its temp_store template could make.
 */
export function isGenuineUploadStart(handler: HandlerRuntime, req: Mongrel2Request, uploadPath: string): boolean {
  if (req.body.length !== 0) return false;
  if (!uploadPathMatches(handler.config.uploadTempStore, uploadPath)) return false;
  const length = mongrel2ContentLength(req.headers);
  return length === -1 || length > 0;
}

/** Resolve a chroot-relative upload path; null if it would leave the chroot. */
function uploadFile(handler: HandlerRuntime, uploadPath: string): string | null {
  if (uploadPath.includes('\0')) return null;
  const root = path.resolve(handler.config.chroot);
  const full = path.resolve(root, '.' + path.posix.normalize('/' + uploadPath));
  const rel = path.relative(root, full);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return null;
  return full;
}
