/** The supervisor → worker data channel's writer, on a real socket (framing: test/unit/process/channel.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ChannelDecoder, ChannelWriter, type ChannelRecord } from '../../src/process/channel.js';
import { fixture } from '../unit/fixtures.js';

const records: ChannelRecord[] = [
  { kind: 'message', handlerIndex: 0, msg: fixture('get-query.json-protocol.bin') },
  { kind: 'stop', timeoutMs: 30_000 },
  { kind: 'message', handlerIndex: 1, msg: fixture('post-form.json-protocol.bin') },
];

function same(got: ChannelRecord[], want: ChannelRecord[]): void {
  assert.deepEqual(got, want);
}

test('the writer sends everything queued in one turn as one write, in order', async () => {
  const [a, b] = await socketPair();
  const writes: number[] = [];
  const origWrite = a.write.bind(a);
  a.write = ((chunk: Buffer) => {
    writes.push(chunk.length);
    return origWrite(chunk);
  }) as typeof a.write;
  const writer = new ChannelWriter(a);
  const d = new ChannelDecoder();
  const got: ChannelRecord[] = [];
  b.on('data', (c: Buffer) => got.push(...d.push(c)));
  for (const r of records) {
    if (r.kind === 'message') writer.message(r.handlerIndex, r.msg);
    else writer.stop(r.timeoutMs);
  }
  assert.ok(writer.backlog > 0);
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 1, 'one write per turn');
  writer.close();
  await new Promise((r) => b.once('end', r));
  same(got, records);
  b.destroy();
});

function socketPair(): Promise<[net.Socket, net.Socket]> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((b) => {
      server.close();
      resolve([a, b]);
    });
    const a = new net.Socket();
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address() as net.AddressInfo;
      a.connect(addr.port, '127.0.0.1');
    });
    server.on('error', reject);
  });
}
