/**
 * Opens the temp file of an upload whose start we verified, safely. The file lives in a
 * directory others may write to (with the default chroot "/", upload.temp_store is often in
 * world-writable /tmp), so its name alone proves nothing:
 * - opened with O_NOFOLLOW: a symlink planted at the name is refused, never followed;
 * - fstat on the open descriptor: a regular file, one link (a hard link to a file elsewhere
 *   has two), owned by a uid we trust to be Mongrel2's (below);
 * - the descriptor stays open while the request lasts and the upstream reads the file through
 *   /proc/self/fd/N, which reopens the same inode whatever happens to the name meanwhile:
 *   no window between the check and the read.
 *
 * The expected owner. Mongrel2 started as root drops to the owner of its chroot directory
 * (src/unixy.c, Unixy_drop_priv); started as another user it keeps that user. m2gw cannot
 * see Mongrel2's uid, so a file is accepted when its owner is the owner of the handler's
 * chroot directory or m2gw's own uid (the usual "same service user" setup). Neither can be
 * faked by another local user, who can only create files owned by itself. When Mongrel2 runs
 * as a user that is neither (started unprivileged, chroot owned by root), the handler's
 * `upload_owner` names its uid, and only that uid is accepted.
 */
import { constants, existsSync, promises as fsp } from 'node:fs';

export interface OpenedUpload {
  /** What upstreams read (a /proc/self/fd path when available, else the file's path). */
  readonly readPath: string;
  readonly length: number;
  close(): void;
}

export class UploadFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UploadFileError';
  }
}

const PROC_FD = existsSync('/proc/self/fd');

/** Opens and checks `file` (an absolute path inside the chroot); throws UploadFileError or an fs error. */
export async function openUpload(file: string, chroot: string, owner: number | null = null): Promise<OpenedUpload> {
  const handle = await fsp.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new UploadFileError('not a regular file');
    if (st.nlink !== 1) throw new UploadFileError(`${st.nlink} links to the file`);
    const trusted = new Set<number>();
    if (owner !== null) {
      trusted.add(owner);
    } else {
      if (typeof process.getuid === 'function') trusted.add(process.getuid());
      trusted.add((await fsp.stat(chroot)).uid);
    }
    if (!trusted.has(st.uid)) throw new UploadFileError(`owned by uid ${st.uid}, not by Mongrel2's (${[...trusted].join(' or ')})`);
    let closed = false;
    return {
      readPath: PROC_FD ? `/proc/self/fd/${handle.fd}` : file,
      length: st.size,
      close() {
        if (closed) return;
        closed = true;
        void handle.close().catch(() => undefined);
      },
    };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}
