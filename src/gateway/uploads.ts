/**
 * Mongrel2's async-upload protocol. For a body above `limits.content_length` (with
 * `upload.temp_store` set) Mongrel2 sends the request twice: an upload-start message
 * (headers, empty body) when it begins writing the body to a temp file, and an
 * upload-done message once the file is complete.
 * This module turns those two messages into one Pending request whose body is the file.
 *
 * Security: the x-mongrel2-upload-* headers are ordinary request headers, so a client can
 * forge them. We believe a start only where Mongrel2 itself would have sent one, and a done
 * only when it matches the start we believed on the same connection; a forged done must
 * never make us read or delete a file. Paths are Mongrel2's, relative to its chroot, and are
 * resolved so they cannot leave it.
 *
 * Promises: every temp file of an upload we accepted or refused is deleted once we are done
 * with it (by the gateway after the request, by the pipeline if the request is dropped, or
 * here). This module is the only writer of ConnState.uploadPath, refusedUploads and uploadCheck.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { M2gwError } from '../errors.js';
import type { Logger } from '../log.js';
import { headerFirst, uploadPathMatches, type Mongrel2Request } from '../mongrel2/request.js';
import type { ConnectionTable, ConnState, HandlerRuntime, Pending } from './connections.js';
import { readRequestLine } from './request-builder.js';
import type { Router } from './router.js';

export class Uploads {
  private readonly log: Logger;
  private readonly router: Router;
  private readonly conns: ConnectionTable;
  private readonly enqueue: (state: ConnState, pending: Pending) => void;

  constructor(log: Logger, router: Router, conns: ConnectionTable, enqueue: (state: ConnState, pending: Pending) => void) {
    this.log = log;
    this.router = router;
    this.conns = conns;
    this.enqueue = enqueue;
  }

  /** An upload-start message: remember it, refuse it early (too large), or serve a forgery as a plain request. */
  onStart(state: ConnState, req: Mongrel2Request, uploadPath: string): void {
    if (!isGenuineUploadStart(state.handler, req, uploadPath)) {
      // A client-made x-mongrel2-upload-start header on an ordinary request: serve it as one
      // (the header itself is never forwarded).
      this.enqueue(state, { req, bodyFile: null, refusal: null });
      return;
    }
    const line = readRequestLine(req);
    const route = this.router.match(line.host, line.path);
    const declared = Number(headerFirst(req.headers, 'content-length') ?? NaN);
    if (route && Number.isFinite(declared) && declared > route.maxBodyBytes) {
      // Answer now so the client stops sending; Mongrel2 aborts the upload (or, if it
      // already has the whole body, still sends a done message we must clean up after).
      (state.refusedUploads ??= new Set()).add(uploadPath);
      this.enqueue(state, {
        req,
        bodyFile: null,
        refusal: new M2gwError('M2GW_BODY_TOO_LARGE', `request body of ${declared} bytes exceeds max_body ${route.maxBodyBytes}`, 'route'),
      });
      return;
    }
    state.uploadPath = uploadPath;
  }

  /** An upload-done message: enqueue the request with the file as its body, or refuse it. */
  async onDone(state: ConnState, req: Mongrel2Request, uploadPath: string): Promise<void> {
    const file = uploadFile(state.handler, uploadPath);
    if (state.refusedUploads?.has(uploadPath) && uploadPathMatches(state.handler.config.uploadTempStore, uploadPath)) {
      state.refusedUploads.delete(uploadPath);
      if (file) await unlinkQuietly(file);
      return;
    }
    if (state.uploadPath !== uploadPath || !uploadPathMatches(state.handler.config.uploadTempStore, uploadPath)) {
      // No matching start on this connection: either a client forging the headers (which
      // must never make us read or delete a file) or an upload whose start we never saw.
      this.log.warn('upload done without a matching upload start refused', { conn: req.connId, path: uploadPath });
      this.enqueue(state, { req, bodyFile: null, refusal: new M2gwError('M2GW_BAD_REQUEST', 'upload done without matching start', 'route') });
      return;
    }
    state.uploadPath = null;
    if (!file) {
      this.log.warn('upload path outside the Mongrel2 chroot refused', { conn: req.connId, path: uploadPath });
      this.enqueue(state, { req, bodyFile: null, refusal: new M2gwError('M2GW_BAD_REQUEST', 'upload path outside chroot', 'route') });
      return;
    }
    let length: number;
    state.uploadCheck = true;
    try {
      const st = await fsp.stat(file);
      if (!st.isFile()) throw new Error('not a regular file');
      length = st.size;
    } catch (err) {
      this.log.error('cannot read Mongrel2 upload file', { conn: req.connId, file, error: String(err) });
      this.enqueue(state, { req, bodyFile: null, refusal: new M2gwError('M2GW_INTERNAL', 'upload file unreadable', 'route') });
      return;
    } finally {
      state.uploadCheck = false;
    }
    if (!this.conns.isCurrent(state)) {
      // The client disconnected while we looked at the file.
      await unlinkQuietly(file);
      return;
    }
    this.enqueue(state, { req, bodyFile: { path: file, length }, refusal: null });
  }
}

/**
 * Mongrel2 replaces x-mongrel2-upload-* only on real uploads, so a start header is believed
 * only where Mongrel2 itself would have sent one: an empty inline body for a request that
 * declared one (Content-Length > 0 or chunked), on a path its temp_store template could make.
 */
function isGenuineUploadStart(handler: HandlerRuntime, req: Mongrel2Request, uploadPath: string): boolean {
  if (req.body.length !== 0) return false;
  if (!uploadPathMatches(handler.config.uploadTempStore, uploadPath)) return false;
  const declared = Number(headerFirst(req.headers, 'content-length') ?? '0');
  const chunked = (headerFirst(req.headers, 'transfer-encoding') ?? '').toLowerCase().includes('chunked');
  return chunked || (Number.isFinite(declared) && declared > 0);
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

/** Delete an upload temp file we are done with; it may be gone already. */
export async function unlinkQuietly(file: string): Promise<void> {
  try {
    await fsp.unlink(file);
  } catch {
    // already gone
  }
}
