/**
 * The CI pass of the fuzz harness (fuzz/): a short run of every registered target, the
 * size-scaling check of every adversarial shape (1 KiB … 256 KiB here, which is enough to see a
 * quadratic step of 16×; `npm run fuzz` goes to 4 MiB), and every seed of the incremental
 * decoders (its first 2 KiB) split at every byte boundary.
 * About a minute in all. A failure message carries the input (and the seed) to reproduce it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { everySplit, runFuzzer } from '../../fuzz/core.js';
import { targets } from '../../fuzz/registry.js';
import { checkScaling, formatScaling, SIZES } from '../../fuzz/scaling.js';
import { cgiHeadTarget, decodeRecords, fastcgiRecordsTarget, parseCgi } from '../../fuzz/targets/fastcgi.js';
import { decodeHttpResponse, httpResponseTarget } from '../../fuzz/targets/http-response.js';
import { decodeFrames, websocketClientTarget } from '../../fuzz/targets/websocket.js';
import { decodeZmtp, zmtpTarget } from '../../fuzz/targets/zmtp.js';

const SECONDS_PER_TARGET = 1;
const CI_SIZES = SIZES.filter((s) => s <= 256 * 1024);
const seed = Number(process.env['M2GW_FUZZ_SEED'] ?? 20261129);

for (const t of targets) {
  test(`fuzz ${t.name}: only documented errors, within ${t.budgetMs ?? 5} ms per input, bounded memory (seed ${seed})`, () => {
    const s = runFuzzer(t, { seconds: SECONDS_PER_TARGET, seed });
    assert.deepEqual(s.failures, []);
    assert.ok(s.inputs > 100, `only ${s.inputs} inputs ran`);
  });
}

for (const t of targets) {
  if (!t.shapes || t.shapes.length === 0) continue;
  test(`scaling ${t.name}: linear in the input on every adversarial shape`, () => {
    const bad: string[] = [];
    for (const shape of t.shapes ?? []) {
      let r = checkScaling(t, shape, CI_SIZES);
      // One more try from scratch: a burst of load can outlast even the re-measuring inside.
      if (!r.ok) r = checkScaling(t, shape, CI_SIZES);
      if (!r.ok) bad.push(formatScaling(r));
    }
    assert.deepEqual(bad, []);
  });
}

test('every seed of the incremental decoders decodes the same when split at any byte boundary', () => {
  for (const seedInput of fastcgiRecordsTarget.seeds()) {
    const whole = decodeRecords([seedInput]);
    const input = seedInput.subarray(0, 2048);
    const head = decodeRecords([input]);
    everySplit(input, (pieces) => assert.equal(decodeRecords(pieces), head));
    assert.ok(whole.length > 0);
  }
  for (const seedInput of cgiHeadTarget.seeds()) {
    const input = seedInput.subarray(0, 2048);
    const whole = parseCgi([input]);
    everySplit(input, (pieces) => assert.equal(parseCgi(pieces), whole));
  }
  for (const seedInput of httpResponseTarget.seeds()) {
    const input = seedInput.subarray(0, 2048);
    for (const headRequest of [false, true]) {
      const whole = decodeHttpResponse([input], headRequest);
      if (!headRequest) assert.doesNotMatch(whole, /error:/, 'a seed is well-formed');
      everySplit(input, (pieces) => assert.equal(decodeHttpResponse(pieces, headRequest), whole));
    }
  }
  for (const seedInput of zmtpTarget.seeds()) {
    const input = seedInput.subarray(0, 2048);
    const whole = decodeZmtp([input]);
    everySplit(input, (pieces) => assert.equal(decodeZmtp(pieces), whole));
  }
  for (const seedInput of websocketClientTarget.seeds()) {
    const input = seedInput.subarray(0, 2048);
    const whole = decodeFrames([input], 'required');
    everySplit(input, (pieces) => assert.equal(decodeFrames(pieces, 'required'), whole));
  }
});

test('ZMTP: a split stream reports a bad frame header as the whole one does (found by the fuzzer)', () => {
  for (const b64 of ['AgAAAAAAAAABLGFhYWE=', 'AQFhAAFMb2NhdGlvbjogLy94DQo=']) {
    const input = Buffer.from(b64, 'base64');
    const whole = decodeZmtp([input]);
    assert.match(whole, /error:/);
    everySplit(input, (pieces) => assert.equal(decodeZmtp(pieces), whole));
  }
});
