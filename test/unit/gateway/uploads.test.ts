/**
 * Issue 11 items 2 and 3: which upload start m2gw believes (Mongrel2's own rules, read from
 * its src/request.c and src/connection.c), and how it opens the temp file (no symlinks, one
 * link, a trusted owner, read through the open descriptor).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, linkSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { isGenuineUploadStart, mongrel2ContentLength, strtolLength } from '../../../src/gateway/uploads.js';
import { openUpload, UploadFileError } from '../../../src/gateway/upload-file.js';
import type { HandlerRuntime } from '../../../src/gateway/connections.js';
import type { Mongrel2Request } from '../../../src/mongrel2/request.js';

test('Content-Length is read as Mongrel2 reads it: strtol base 10, 0 when negative or past INT_MAX', () => {
  const cases: Array<[string, number]> = [
    ['50000', 50000], ['  42', 42], ['\t42', 42], ['+42', 42], ['42abc', 42], ['0x10', 0], ['0X10', 0], ['1e5', 1], ['', 0], ['abc', 0],
    ['-1', 0], ['-50000', 0], ['2147483647', 2147483647], ['2147483648', 0], ['99999999999999999999999', 0], ['00042', 42], ['4 2', 4],
  ];
  for (const [raw, want] of cases) assert.equal(strtolLength(raw), want, JSON.stringify(raw));
});

test('a body is streamed (-1) only for Transfer-Encoding exactly "chunked" and no Content-Length', () => {
  assert.equal(mongrel2ContentLength({ 'transfer-encoding': 'chunked' }), -1);
  for (const te of ['Chunked', 'CHUNKED', 'gzip, chunked', 'chunked, gzip', ' chunked', 'chunked ']) {
    assert.equal(mongrel2ContentLength({ 'transfer-encoding': te }), 0, te);
  }
  assert.equal(mongrel2ContentLength({ 'transfer-encoding': 'chunked', 'content-length': '30000' }), 30000, 'Content-Length wins');
  assert.equal(mongrel2ContentLength({ 'transfer-encoding': ['chunked', 'gzip'] }), -1, 'first value only');
  assert.equal(mongrel2ContentLength({ 'content-length': ['0x10', '50000'] }), 0, 'first value only');
});

test('a start is believed only where Mongrel2 would send one', () => {
  const handler = { config: { uploadTempStore: '/tmp/upload.XXXXXX' } } as unknown as HandlerRuntime;
  const req = (headers: Record<string, string>, body = Buffer.alloc(0)): Mongrel2Request => ({ headers, body }) as unknown as Mongrel2Request;
  const p = '/tmp/upload.aB3dE9';
  assert.equal(isGenuineUploadStart(handler, req({ 'content-length': '50000' }), p), true);
  assert.equal(isGenuineUploadStart(handler, req({ 'transfer-encoding': 'chunked' }), p), true);
  for (const h of [{ 'transfer-encoding': 'Chunked' } as Record<string, string>, { 'transfer-encoding': 'gzip, chunked' }, { 'content-length': '0x10' }, { 'content-length': '-1' }, {}]) {
    assert.equal(isGenuineUploadStart(handler, req(h), p), false, JSON.stringify(h));
  }
  assert.equal(isGenuineUploadStart(handler, req({ 'content-length': '50000' }, Buffer.from('x')), p), false, 'an inline body');
  assert.equal(isGenuineUploadStart(handler, req({ 'content-length': '50000' }), '/etc/passwd'), false, 'not a temp_store name');
});

function tmpDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'm2gw-upload-'));
}

test('an upload file is opened without following a symlink, and read through its descriptor', async () => {
  const dir = tmpDir();
  try {
    const secret = path.join(dir, 'secret');
    writeFileSync(secret, 'SECRET');
    const planted = path.join(dir, 'upload.AAAAAA');
    symlinkSync(secret, planted);
    await assert.rejects(openUpload(planted, dir), /ELOOP|symbolic|not a regular/);

    const genuine = path.join(dir, 'upload.BBBBBB');
    writeFileSync(genuine, 'BODY');
    const opened = await openUpload(genuine, dir);
    assert.equal(opened.length, 4);
    // The name is swapped for a symlink after the check: the read still gets the checked file.
    unlinkSync(genuine);
    symlinkSync(secret, genuine);
    assert.equal(readFileSync(opened.readPath, 'latin1'), 'BODY');
    opened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an upload file with two links, of another owner, or not a regular file is refused', async () => {
  const dir = tmpDir();
  try {
    const target = path.join(dir, 'elsewhere');
    writeFileSync(target, 'X');
    const linked = path.join(dir, 'upload.CCCCCC');
    linkSync(target, linked);
    await assert.rejects(openUpload(linked, dir), (e: unknown) => e instanceof UploadFileError && /2 links/.test(e.message));

    const fifo = path.join(dir, 'upload.DDDDDD');
    execFileSync('mkfifo', [fifo]);
    // O_NONBLOCK: a FIFO planted at the name never blocks the open.
    await assert.rejects(openUpload(fifo, dir), (e: unknown) => e instanceof UploadFileError && /regular/.test(e.message));

    if (process.getuid?.() === 0) {
      const foreign = path.join(dir, 'upload.EEEEEE');
      writeFileSync(foreign, 'X');
      chownSync(foreign, 54321, 54321);
      await assert.rejects(openUpload(foreign, dir), (e: unknown) => e instanceof UploadFileError && /owned by uid 54321/.test(e.message));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with upload_owner set, only that uid is trusted', async () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'upload.FFFFFF');
    writeFileSync(f, 'X');
    const uid = process.getuid?.() ?? 0;
    await assert.rejects(openUpload(f, dir, uid + 1), (e: unknown) => e instanceof UploadFileError && /owned by uid/.test(e.message));
    const ok = await openUpload(f, dir, uid);
    ok.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
