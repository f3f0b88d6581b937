/**
 * `m2gw init --http URL --php DOCROOT [--dir DIR] [--force]`: writes a mongrel2.conf and a
 * gw.toml that agree (see init-templates.ts). Nothing is written unless both files can
 * be: an existing file is only replaced with --force, so a second `init` never clobbers
 * a config an operator has edited.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { checkHostPort, checkZmqSpec } from '../config/addresses.js';
import { renderGwToml, renderMongrel2Conf, routeLayout, type InitInput } from './init-templates.js';

export interface InitOptions {
  http?: string;
  php?: string;
  fpm: string;
  dir: string;
  chroot?: string;
  port: string;
  sendSpec: string;
  recvSpec: string;
  force?: boolean;
}

export class InitError extends Error {}

export const INIT_DEFAULTS = {
  fpm: 'unix:/run/php/php-fpm.sock',
  dir: '.',
  port: '6767',
  sendSpec: 'tcp://127.0.0.1:9997',
  recvSpec: 'tcp://127.0.0.1:9996',
} as const;

/** Validates the options into the template input; every mistake is an InitError naming the option. */
export function initInput(o: InitOptions): InitInput {
  if (o.http === undefined && o.php === undefined) throw new InitError('give --http URL, --php DOCUMENT_ROOT, or both');
  if (o.http !== undefined && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(o.http)) {
    throw new InitError(`--http must be a base URL such as http://127.0.0.1:3000, got "${o.http}"`);
  }
  const port = Number(o.port);
  if (!/^\d+$/.test(o.port) || port < 1 || port > 65535) throw new InitError(`--port must be 1-65535, got "${o.port}"`);
  for (const [name, spec] of [['--send-spec', o.sendSpec], ['--recv-spec', o.recvSpec]] as const) {
    const problem = checkZmqSpec(spec);
    if (problem !== null) throw new InitError(`${name}: ${problem}`);
  }
  if (o.sendSpec === o.recvSpec) throw new InitError('--send-spec and --recv-spec must differ');
  if (!o.fpm.startsWith('unix:/')) {
    const problem = checkHostPort(o.fpm);
    if (problem !== null) throw new InitError(`--fpm must be "unix:/path.sock" or host:port: ${problem}`);
  }
  return {
    http: o.http ?? null,
    php: o.php === undefined ? null : path.resolve(o.php),
    fpm: o.fpm,
    chroot: path.resolve(o.chroot ?? o.dir),
    port,
    sendSpec: o.sendSpec,
    recvSpec: o.recvSpec,
    serverUuid: randomUUID(),
    sendIdent: randomUUID(),
  };
}

export interface InitResult {
  files: string[];
  /** Directories made inside the chroot (run/, logs/, tmp/) when the chroot is --dir. */
  dirs: string[];
  serverUuid: string;
}

export function runInit(o: InitOptions): InitResult {
  const input = initInput(o);
  const dir = path.resolve(o.dir);
  const outputs = [
    { file: path.join(dir, 'mongrel2.conf'), text: renderMongrel2Conf(input) },
    { file: path.join(dir, 'gw.toml'), text: renderGwToml(input) },
  ];
  if (o.force !== true) {
    const existing = outputs.filter((out) => fs.existsSync(out.file)).map((out) => out.file);
    if (existing.length > 0) throw new InitError(`${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; nothing written (--force replaces)`);
  }
  fs.mkdirSync(dir, { recursive: true });
  for (const out of outputs) fs.writeFileSync(out.file, out.text, { flag: o.force === true ? 'w' : 'wx' });
  // Mongrel2 exits at start without run/ (pid file) and logs/; uploads need tmp/.
  const dirs: string[] = [];
  if (input.chroot === dir) {
    for (const sub of ['run', 'logs', 'tmp']) {
      const d = path.join(dir, sub);
      if (!fs.existsSync(d)) {
        fs.mkdirSync(d);
        dirs.push(d);
      }
    }
  }
  return { files: outputs.map((out) => out.file), dirs, serverUuid: input.serverUuid };
}

/** What the user sees after a successful init: what was written and the next commands. */
export function describeInit(r: InitResult, o: InitOptions): string {
  const layout = routeLayout({ http: o.http ?? null, php: o.php ?? null });
  const routes = [
    layout.phpPrefix !== null ? `  ${layout.phpPrefix} → PHP-FPM (${o.fpm}, document root ${path.resolve(o.php ?? '.')})` : null,
    layout.httpPrefix !== null ? `  ${layout.httpPrefix} → ${o.http ?? ''}` : null,
  ].filter((l): l is string => l !== null);
  const dir = path.resolve(o.dir);
  return [
    ...r.files.map((f) => `wrote ${f}`),
    ...r.dirs.map((d) => `created ${d}/`),
    'routes:',
    ...routes,
    'next:',
    `  cd ${dir}`,
    '  m2sh load -config mongrel2.conf -db config.sqlite',
    '  m2gw check --config gw.toml --mongrel2 config.sqlite',
    `  mongrel2 config.sqlite ${r.serverUuid} &     # as root: chroots into ${path.resolve(o.chroot ?? o.dir)}`,
    '  m2gw start --config gw.toml',
  ].join('\n');
}
