import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  ScriptResolver,
  decodeRequestPath,
  hasHiddenSegment,
  isDenied,
  nodeResolverFs,
  slashRedirect,
  splitScriptPath,
} from '../../../src/upstream/fastcgi/script-resolver.js';
import type { Resolution, ResolverFs, ResolverOptions } from '../../../src/upstream/fastcgi/script-resolver.js';

// --- pure decisions ---------------------------------------------------------------------------

test('decodeRequestPath: normal paths, table', () => {
  const table: Array<[string, string, boolean]> = [
    ['/', '/', false],
    ['/a/b', '/a/b', false],
    ['/a//b/./c', '/a/b/c', false],
    ['/a/b/', '/a/b/', true],
    ['/a/b/.', '/a/b/', true],
    ['/%61%62c', '/abc', false],
    ['/a%20b', '/a b', false],
    ['/caf%C3%A9.php', '/caf\u00c3\u00a9.php', false],
    ['/...', '/...', false],
  ];
  for (const [raw, want, slash] of table) {
    const d = decodeRequestPath(raw);
    assert.ok(d.ok, raw);
    assert.equal(d.path, want, raw);
    assert.equal(d.trailingSlash, slash, raw);
  }
});

test('decodeRequestPath: refused paths with their status, table (security regressions)', () => {
  const table: Array<[string, string, number]> = [
    ['dot-dot segment', '/a/../b', 400],
    ['leading dot-dot', '/../etc/passwd', 400],
    ['encoded dot-dot %2e%2e', '/%2e%2e/etc/passwd', 400],
    ['mixed encoded dot-dot', '/.%2E/x.php', 400],
    ['encoded NUL %00', '/x.php%00.jpg', 400],
    ['raw NUL', '/x\u0000.php', 400],
    ['encoded slash %2F', '/a%2Fb.php', 404],
    ['encoded slash lower %2f', '/a%2fb', 404],
    ['encoded dot-dot-slash', '/%2e%2e%2fetc', 404],
    ['raw backslash', '/a\\b.php', 404],
    ['encoded backslash %5C', '/..%5C..%5Cx', 404],
    ['bad escape', '/%zz', 400],
    ['truncated escape', '/a%4', 400],
    ['no leading slash', 'x.php', 400],
    ['not a byte string', '/\u0100', 400],
  ];
  for (const [name, raw, status] of table) {
    const d = decodeRequestPath(raw);
    assert.equal(d.ok, false, name);
    if (!d.ok) assert.equal(d.error.code, status === 400 ? 'M2GW_BAD_REQUEST' : 'M2GW_NOT_FOUND', name);
  }
});

test('splitScriptPath: first extension that ends a segment, ASCII case-insensitive, table', () => {
  const table: Array<[string, [string, string] | null]> = [
    ['/x.php', ['/x.php', '']],
    ['/x.php/a/b', ['/x.php', '/a/b']],
    ['/x.php/', ['/x.php', '/']],
    ['/X.PHP', ['/X.PHP', '']],
    ['/x.Php/y', ['/x.Php', '/y']],
    ['/a.php/b.php', ['/a.php', '/b.php']],
    ['/evil.php.jpg', null],
    ['/uploads/x.jpg/y.php', ['/uploads/x.jpg/y.php', '']],
    ['/x.php5', null],
    ['/x.phpx/y', null],
    ['/', null],
    ['/dir/', null],
    ['/\u00e9.php', ['/\u00e9.php', '']],
  ];
  for (const [p, want] of table) {
    const got = splitScriptPath(p, '.php');
    assert.deepEqual(got === null ? null : [got.script, got.pathInfo], want, p);
  }
  assert.deepEqual(splitScriptPath('/t.phtml/x', '.phtml'), { script: '/t.phtml', pathInfo: '/x' });
  assert.equal(splitScriptPath('/t.php', '.phtml'), null);
});

test('isDenied: plain prefixes, ASCII case-insensitive', () => {
  assert.ok(isDenied('/private/x.php', ['/private']));
  assert.ok(isDenied('/PRIVATE/x.php', ['/private']));
  assert.ok(isDenied('/.git/config', ['/.git']));
  assert.ok(isDenied('/vendorx', ['/vendor']), 'a plain prefix, as configured');
  assert.ok(!isDenied('/vendorx', ['/vendor/']));
  assert.ok(!isDenied('/public/x', ['/private']));
  assert.ok(!isDenied('/x', []));
});

test('hasHiddenSegment: dot-files and dot-dirs, /.well-known/ excepted', () => {
  assert.ok(hasHiddenSegment('/.env'));
  assert.ok(hasHiddenSegment('/a/.git/config'));
  assert.ok(!hasHiddenSegment('/.well-known/acme-challenge/t'));
  assert.ok(hasHiddenSegment('/.well-known/.x'));
  assert.ok(!hasHiddenSegment('/a.b/c'));
  assert.ok(!hasHiddenSegment('/.well-known'));
  assert.ok(hasHiddenSegment('/.well-knownx/a'));
});

test('slashRedirect keeps the client’s path prefix and query, and builds the path from its normal form', () => {
  assert.equal(slashRedirect('/sub', '/sub', '/sub'), '/sub/');
  assert.equal(slashRedirect('/app/sub?q=1&r', '/sub', '/sub'), '/app/sub/?q=1&r');
  assert.equal(slashRedirect('//admin', '//admin', '/admin'), '/admin/');
  assert.equal(slashRedirect('/app//admin?x', '//admin', '/admin'), '/app/admin/?x');
  assert.equal(slashRedirect('/appx', '/x', '/x'), '/appx/');
  assert.equal(slashRedirect('/./admin', '/./admin', '/admin'), '/admin/');
  assert.equal(slashRedirect('/%2e/admin', '/%2e/admin', '/admin'), '/admin/');
  // Whatever comes in, the Location never starts with two slashes (a host) or slash-backslash.
  assert.equal(slashRedirect('//x//y', '/y', '/y'), '/x//y/');
  assert.equal(slashRedirect('///evil', '/q', '/q'), '/q/');
});

// --- against a real directory tree ------------------------------------------------------------

let tmp = '';
let root = '';

function write(rel: string, content = '<?php echo 1;'): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-resolver-'));
  root = path.join(tmp, 'www');
  for (const f of ['.git/hook.php', 'sub/.hidden.php', '.well-known/run.php', 'index.php', 'x.php', 'X.PHP', 'front.php', 'evil.php.jpg', 'uploads/x.jpg', 'sub/index.php', 'private/secret.php']) write(f);
  write('sub/page.txt', 'text');
  write('.env', 'SECRET=1');
  write('.well-known/acme.txt', 'token');
  write('a.php/index.php');
  write('caf\u00e9.php');
  fs.mkdirSync(path.join(root, 'nodir'));
  fs.mkdirSync(path.join(tmp, 'outside'));
  fs.writeFileSync(path.join(tmp, 'outside', 'evil.php'), '<?php echo "outside";');
  fs.writeFileSync(path.join(tmp, 'outside', 'data.txt'), 'outside');
  fs.symlinkSync(path.join(tmp, 'outside', 'evil.php'), path.join(root, 'link-out.php'));
  fs.symlinkSync(path.join(tmp, 'outside'), path.join(root, 'linkdir'));
  fs.symlinkSync(path.join(root, 'x.php'), path.join(root, 'link-in.php'));
  fs.symlinkSync(path.join(root, 'private'), path.join(root, 'alias'));
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function resolver(over: Partial<ResolverOptions> = {}, fsx?: ResolverFs): ScriptResolver {
  return new ScriptResolver(
    {
      documentRoot: root,
      index: 'index.php',
      frontController: null,
      serveStatic: false,
      deny: ['/private'],
      scriptExtension: '.php',
      ...over,
    },
    fsx,
  );
}

async function resolve(r: ScriptResolver, p: string, originalUri = p): Promise<Resolution> {
  return r.resolve({ path: p, originalUri });
}

function assertScript(res: Resolution, scriptName: string, pathInfo = ''): void {
  assert.equal(res.kind, 'script', JSON.stringify(res));
  if (res.kind !== 'script') return;
  assert.equal(res.scriptName, scriptName);
  assert.equal(res.scriptFilename, root + scriptName);
  assert.equal(res.pathInfo, pathInfo);
}

function assertError(res: Resolution, code: string, what: string): void {
  assert.equal(res.kind, 'error', `${what}: ${JSON.stringify(res)}`);
  if (res.kind === 'error') assert.equal(res.error.code, code, what);
}

test('resolver: a script, and a script with PATH_INFO', async () => {
  const r = resolver();
  assertScript(await resolve(r, '/x.php'), '/x.php');
  assertScript(await resolve(r, '/x.php/extra/path'), '/x.php', '/extra/path');
  assertScript(await resolve(r, '/%78.php'), '/x.php');
  assertScript(await resolve(r, '/caf%C3%A9.php'), '/caf\u00c3\u00a9.php');
});

test('resolver: a missing script is 404 without contacting PHP', async () => {
  assertError(await resolve(resolver(), '/nope.php'), 'M2GW_NOT_FOUND', 'missing');
  assertError(await resolve(resolver(), '/nope.php/x'), 'M2GW_NOT_FOUND', 'missing with path info');
});

test('resolver: security — ".." and "%2e%2e" never leave document_root', async () => {
  const r = resolver({ serveStatic: true });
  for (const p of ['/../outside/evil.php', '/%2e%2e/outside/evil.php', '/sub/..%2f..%2foutside/data.txt', '/sub/%2E%2E/%2E%2E/outside/data.txt']) {
    const res = await resolve(r, p);
    assert.equal(res.kind, 'error', p);
  }
});

test('resolver: security — %00 in the path is refused', async () => {
  assertError(await resolve(resolver(), '/x.php%00.jpg'), 'M2GW_BAD_REQUEST', '%00');
});

test('resolver: security — an encoded slash %2F is refused', async () => {
  assertError(await resolve(resolver(), '/sub%2Findex.php'), 'M2GW_NOT_FOUND', '%2F');
});

test('resolver: security — /evil.php.jpg is never executed (static at most)', async () => {
  assertError(await resolve(resolver(), '/evil.php.jpg'), 'M2GW_NOT_FOUND', 'no static');
  const res = await resolve(resolver({ serveStatic: true }), '/evil.php.jpg');
  assert.equal(res.kind, 'static');
});

test('resolver: security — /uploads/x.jpg/y.php does not execute x.jpg', async () => {
  for (const r of [resolver(), resolver({ serveStatic: true })]) {
    assertError(await resolve(r, '/uploads/x.jpg/y.php'), 'M2GW_NOT_FOUND', 'x.jpg as a script');
    assertError(await resolve(r, '/uploads/x.jpg/y.php/more'), 'M2GW_NOT_FOUND', 'x.jpg as a script');
  }
  const fc = await resolve(resolver({ frontController: 'front.php' }), '/uploads/x.jpg/y.php');
  assertScript(fc, '/front.php');
});

test('resolver: security — /X.PHP is neither executed nor served as source', async () => {
  for (const r of [resolver(), resolver({ serveStatic: true })]) {
    assertError(await resolve(r, '/X.PHP'), 'M2GW_NOT_FOUND', 'upper-case extension');
    assertError(await resolve(r, '/x.PHP'), 'M2GW_NOT_FOUND', 'case variant of an existing script');
  }
});

test('resolver: security — symlinks out of document_root are refused, inside ones followed', async () => {
  const r = resolver({ serveStatic: true });
  assertError(await resolve(r, '/link-out.php'), 'M2GW_NOT_FOUND', 'script symlink out');
  assertError(await resolve(r, '/linkdir/data.txt'), 'M2GW_NOT_FOUND', 'dir symlink out');
  assertError(await resolve(r, '/linkdir/evil.php'), 'M2GW_NOT_FOUND', 'script through dir symlink out');
  assertScript(await resolve(r, '/link-in.php'), '/link-in.php');
});

test('resolver: security — deny prefixes are 403, also through a symlink and in another case', async () => {
  const r = resolver();
  assertError(await resolve(r, '/private/secret.php'), 'M2GW_FORBIDDEN', 'deny');
  assertError(await resolve(r, '/PRIVATE/secret.php'), 'M2GW_FORBIDDEN', 'deny, case');
  assertError(await resolve(r, '/private/'), 'M2GW_FORBIDDEN', 'deny dir');
  assertError(await resolve(r, '/alias/secret.php'), 'M2GW_FORBIDDEN', 'deny via symlink');
  assertError(await resolve(resolver({ frontController: '/front.php' }), '/private/none'), 'M2GW_FORBIDDEN', 'deny beats the front controller');
});

test('resolver: security — dot-files are not served statically', async () => {
  const r = resolver({ serveStatic: true });
  assertError(await resolve(r, '/.env'), 'M2GW_NOT_FOUND', '.env');
  assert.equal((await resolve(r, '/.well-known/acme.txt')).kind, 'static');
});

test('resolver: security — scripts in dot-directories or named with a dot are not executed either', async () => {
  const r = resolver({ serveStatic: true });
  assertError(await resolve(r, '/.git/hook.php'), 'M2GW_NOT_FOUND', '/.git/hook.php');
  assertError(await resolve(r, '/.git/hook.php/x'), 'M2GW_NOT_FOUND', 'with PATH_INFO');
  assertError(await resolve(r, '/%2egit/hook.php'), 'M2GW_NOT_FOUND', 'encoded dot');
  assertError(await resolve(r, '/sub/.hidden.php'), 'M2GW_NOT_FOUND', 'dot-file script');
  assertError(await resolve(r, '/.git'), 'M2GW_NOT_FOUND', 'no redirect that reveals a dot-directory');
  assertError(await resolve(r, '/.git/'), 'M2GW_NOT_FOUND', 'no index in a dot-directory');
  // As for static files, a front controller gets them like any path that does not exist.
  assertScript(await resolve(resolver({ frontController: '/front.php' }), '/.git/hook.php'), '/front.php');
  // PATH_INFO is not a file: a dot segment there is the app's business.
  assertScript(await resolve(r, '/x.php/.well/x'), '/x.php', '/.well/x');
  assertScript(await resolve(r, '/.well-known/run.php'), '/.well-known/run.php');
});

test('resolver: a directory asked for as //sub redirects to /sub/, never to a protocol-relative URL', async () => {
  const r = resolver();
  assert.deepEqual(await resolve(r, '//sub'), { kind: 'redirect', location: '/sub/' });
  assert.deepEqual(await resolve(r, '//sub', '/app//sub?q=1'), { kind: 'redirect', location: '/app/sub/?q=1' });
  assert.deepEqual(await resolve(r, '/./sub'), { kind: 'redirect', location: '/sub/' });
});

test('resolver: directories — index, 301 to the slash form (query and prefix kept), no index', async () => {
  const r = resolver();
  assertScript(await resolve(r, '/sub/'), '/sub/index.php');
  assertScript(await resolve(r, '/'), '/index.php');
  assert.deepEqual(await resolve(r, '/sub', '/app/sub?q=1'), { kind: 'redirect', location: '/app/sub/?q=1' });
  assertError(await resolve(r, '/nodir'), 'M2GW_NOT_FOUND', 'dir without index');
  assertError(await resolve(r, '/nodir/'), 'M2GW_NOT_FOUND', 'dir without index, slash');
  assertError(await resolve(r, '/a.php'), 'M2GW_NOT_FOUND', 'a directory named like a script');
});

test('resolver: static files only with serve_static', async () => {
  assertError(await resolve(resolver(), '/sub/page.txt'), 'M2GW_NOT_FOUND', 'off');
  const res = await resolve(resolver({ serveStatic: true }), '/sub/page.txt');
  assert.equal(res.kind, 'static');
  if (res.kind === 'static') {
    assert.equal(res.file, root + '/sub/page.txt');
    assert.equal(res.stat.size, 4);
  }
});

test('resolver: front controller takes what is not a file (try_files $uri $uri/ /front.php)', async () => {
  const r = resolver({ frontController: '/front.php' });
  assertScript(await resolve(r, '/some/route'), '/front.php');
  assertScript(await resolve(r, '/nope.php'), '/front.php');
  assertScript(await resolve(r, '/nodir/'), '/front.php');
  assertScript(await resolve(r, '/sub/page.txt'), '/front.php', '');
  assertScript(await resolve(r, '/x.php/extra'), '/x.php', '/extra');
  assertScript(await resolve(r, '/sub/'), '/sub/index.php');
  const st = await resolve(resolver({ frontController: 'front.php', serveStatic: true }), '/sub/page.txt');
  assert.equal(st.kind, 'static');
  const missing = resolver({ frontController: '/missing-front.php' });
  assertError(await resolve(missing, '/route'), 'M2GW_NOT_FOUND', 'front controller file missing');
});

test('resolver: script decisions are cached briefly; other decisions are not', async () => {
  let stats = 0;
  const counting: ResolverFs = {
    stat: (p) => {
      stats++;
      return nodeResolverFs.stat(p);
    },
    realpath: (p) => nodeResolverFs.realpath(p),
  };
  const r = resolver({}, counting);
  assertScript(await resolve(r, '/x.php'), '/x.php');
  const first = stats;
  assert.ok(first > 0);
  assertScript(await resolve(r, '/x.php'), '/x.php');
  assert.equal(stats, first, 'second lookup served from the cache');
  await resolve(r, '/nope.php');
  const afterMiss = stats;
  await resolve(r, '/nope.php');
  assert.ok(stats > afterMiss, 'misses are not cached');
  r.clearCache();
  await resolve(r, '/x.php');
  assert.ok(stats > afterMiss + 1);
});
