import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../../src/config/load.js';

const base = (extra: string): string =>
  `[[handler]]\nsend_spec = "tcp://127.0.0.1:9997"\nrecv_spec = "tcp://127.0.0.1:9996"\n${extra}\n[upstream.a]\ntype = "http"\nurl = "http://127.0.0.1:1"\n[[route]]\nprefix = "/"\nupstream = "a"\n`;

test('handler upload_owner: a uid, unset by default, refused when not a uid', () => {
  assert.equal(parseConfigText(base('upload_owner = 998'), '/tmp/gw.toml').config?.handlers[0]?.uploadOwner, 998);
  assert.equal(parseConfigText(base(''), '/tmp/gw.toml').config?.handlers[0]?.uploadOwner, undefined);
  for (const bad of ['upload_owner = -1', 'upload_owner = "mongrel2"', 'upload_owner = 1.5']) {
    const r = parseConfigText(base(bad), '/tmp/gw.toml');
    assert.equal(r.config, null, bad);
    assert.ok(r.problems.some((p) => p.key.endsWith('upload_owner')), bad);
  }
});
