/** The supervisor → worker data channel framing (the writer on a real socket: test/integration/channel.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelDecoder, HEADER_BYTES, encodeRecords, type ChannelRecord } from '../../../src/process/channel.js';
import { fixture } from '../fixtures.js';

const records: ChannelRecord[] = [
  { kind: 'message', handlerIndex: 0, msg: fixture('get-query.json-protocol.bin') },
  { kind: 'message', handlerIndex: 3, msg: fixture('disconnect.tnet-protocol.bin') },
  { kind: 'message', handlerIndex: 65535, msg: Buffer.alloc(0) },
  { kind: 'stop', timeoutMs: 30_000 },
  { kind: 'message', handlerIndex: 1, msg: fixture('post-form.json-protocol.bin') },
];

function same(got: ChannelRecord[], want: ChannelRecord[]): void {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    const w = want[i]!;
    assert.equal(g.kind, w.kind);
    if (g.kind === 'message' && w.kind === 'message') {
      assert.equal(g.handlerIndex, w.handlerIndex);
      assert.ok(g.msg.equals(w.msg), `record ${i} bytes`);
    } else if (g.kind === 'stop' && w.kind === 'stop') {
      assert.equal(g.timeoutMs, w.timeoutMs);
    }
  });
}

test('records survive a split at every offset', () => {
  const bytes = encodeRecords(records);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const d = new ChannelDecoder();
    const got = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
    same(got, records);
    assert.equal(d.pending, 0);
  }
});

test('records survive byte-at-a-time delivery', () => {
  const bytes = encodeRecords(records);
  const d = new ChannelDecoder();
  const got: ChannelRecord[] = [];
  for (let i = 0; i < bytes.length; i++) got.push(...d.push(bytes.subarray(i, i + 1)));
  same(got, records);
});

test('a corrupt stream is an error, not a silent misparse', () => {
  const bad = Buffer.alloc(HEADER_BYTES + 4);
  bad.writeUInt32BE(4, 0);
  bad[4] = 9; // unknown kind
  assert.throws(() => new ChannelDecoder().push(bad), /corrupt/);
  const huge = Buffer.alloc(HEADER_BYTES);
  huge.writeUInt32BE(0xffffffff, 0);
  huge[4] = 1;
  assert.throws(() => new ChannelDecoder().push(huge), /corrupt/);
});
