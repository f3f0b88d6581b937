/**
 * winston factory. Structured JSON (or a readable text line) to stdout or a file;
 * SIGUSR1 reopens the file (logrotate's copytruncate-free rotation).
 *
 * Cost matters here: with the access log on (the default) every request writes a line,
 * and winston's stock pieces cost a worker about a quarter of its CPU per request
 * (bench/README.md, "where the time goes"): logform's json() configures
 * safe-stable-stringify anew for every line, and the File transport hands each line to
 * a stream that writes it through the thread pool. So the JSON format here writes the
 * same line (keys sorted, as logform's json() does) directly when every value is a
 * plain string, number or boolean, and the file transport appends the lines of up to
 * 50 ms with one write.
 */
import winston from 'winston';
import type TransportStream from 'winston-transport';
import type { LogConfig } from './config/schema.js';
import { LineFileTransport, MESSAGE, type Info } from './log-file.js';

export { LineFileTransport } from './log-file.js';

export type Logger = winston.Logger;

/** logform's json(), for records with nested values: one instance, configured once. */
const fullJson = winston.format.json();

/**
 * The line logform's timestamp() + json() would write. Flat records (the access line,
 * most messages) are built here; anything nested, or a value JSON has no plain form for,
 * goes to logform's json() so the output stays byte-identical.
 */
export function jsonLine(info: Info): string {
  if (info.timestamp === undefined) info.timestamp = new Date().toISOString();
  const keys = sortedKeys(info);
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const text = plainJson(info[key]);
    if (text === undefined) continue;
    if (text === null) return (fullJson.transform(info, {}) as Info)[MESSAGE] as string;
    out += (out.length === 1 ? '' : ',') + quotedKey(key) + text;
  }
  return out + '}';
}

/** A value's JSON text as JSON.stringify writes it in an object; undefined: the key is left out; null: not a flat value. */
function plainJson(v: unknown): string | undefined | null {
  switch (typeof v) {
    case 'string':
      return quote(v);
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'undefined':
      return undefined;
    default:
      return v === null ? 'null' : null;
  }
}

/** The last record shape and its keys in order: access lines repeat one or two shapes. */
let lastKeys: string[] = [];
let lastSorted: string[] = [];

function sortedKeys(info: Info): string[] {
  const keys = Object.keys(info);
  if (keys.length === lastKeys.length) {
    let same = true;
    for (let i = 0; i < keys.length && same; i++) same = keys[i] === lastKeys[i];
    if (same) return lastSorted;
  }
  lastKeys = keys;
  lastSorted = [...keys].sort();
  return lastSorted;
}

/** `"key":` per key seen: a line repeats the same dozen keys. Bounded: keys come from code, not input. */
const keyCache = new Map<string, string>();

function quotedKey(key: string): string {
  let q = keyCache.get(key);
  if (q === undefined) {
    q = quote(key) + ':';
    if (keyCache.size < 1000) keyCache.set(key, q);
  }
  return q;
}

/** What JSON.stringify needs to escape (controls, quote, backslash, lone surrogate halves). */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** JSON.stringify(s) for a string, without its cost in the common case of nothing to escape. */
function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"';
}

const jsonFormat = winston.format((info) => {
  (info as Info)[MESSAGE] = jsonLine(info as Info);
  return info;
});

/** Loggers made by createLogger with the JSON format: their lines are exactly jsonLine(info). */
const jsonLoggers = new WeakSet<Logger>();
const LEVEL = Symbol.for('level');
const noop = (): void => undefined;

/** The fields of one access line (see gateway/request-log.ts for their meaning). */
export type AccessFields = Record<string, string | number>;

/**
 * Writes one info-level line, the same bytes `logger.info(message, fields)` would write,
 * straight to the logger's transports: winston's object-mode stream between the logger and
 * its transports cost more than the line itself. Only for loggers of createLogger with the
 * JSON format (any other logger gets logger.info, so its own format applies).
 *
 * `keys`: the fields' own keys in order, as a constant of the caller's (the same array object
 * every call), so a line's shape is recognised without listing the keys of every record.
 */
export function logInfoFast(logger: Logger, message: string, fields: AccessFields, keys?: readonly string[]): void {
  if (!jsonLoggers.has(logger)) {
    logger.info(message, fields);
    return;
  }
  const meta = logger.defaultMeta as Record<string, unknown> | undefined;
  const file = onlyFileTransport(logger);
  // With one file transport, checked as isLevelEnabled would, without the arrays winston's
  // transports getter builds.
  if (file !== null ? file.silent || !takesInfo(logger, file) : !logger.isLevelEnabled('info')) return;
  const line = flatLine(meta, fields, message, keys);
  if (file !== null && line !== null) {
    // The usual case: a file, which takes the line itself (no record object is built).
    file.writeLine(line);
    return;
  }
  // Object.assign, not spread syntax: spreading winston's defaultMeta measured ~25 µs a line.
  const info = Object.assign({}, meta, fields, { level: 'info', message }) as Info;
  info[LEVEL] = 'info';
  info[MESSAGE] = line ?? jsonLine(info);
  for (const t of logger.transports) {
    if (t.silent || !takesInfo(logger, t)) continue;
    t.log?.(info, noop);
  }
}

/**
 * The logger's transport when it is one LineFileTransport, read where winston's `transports`
 * getter reads it (readable-stream's pipes: one destination, or an array of several).
 */
function onlyFileTransport(logger: Logger): LineFileTransport | null {
  const pipes = (logger as unknown as { _readableState?: { pipes?: unknown } })._readableState?.pipes;
  const only = Array.isArray(pipes) ? (pipes.length === 1 ? (pipes[0] as unknown) : null) : pipes;
  return only instanceof LineFileTransport ? only : null;
}

/** The transport writes info lines: its own level, or else the logger's (as isLevelEnabled decides). */
function takesInfo(logger: Logger, t: TransportStream): boolean {
  const levels = logger.levels;
  const level = levels[t.level ?? logger.level];
  return level !== undefined && level >= levels.info!;
}

/**
 * The order of one record shape's keys, as jsonLine would write them, and where each value
 * comes from: the fields, the logger's meta, or the three keys every line has. Access lines
 * have one or two shapes (with or without an error), so the sort runs once per shape.
 */
interface Shape {
  readonly meta: Record<string, unknown> | undefined;
  /** The caller's constant key list this shape was made for (logInfoFast's `keys`), if any. */
  readonly given: readonly string[] | undefined;
  readonly fieldKeys: string[];
  /**
   * Sorted keys, each with its `"key":` text (with the comma before it, but for the first)
   * and its source. The logger's meta and the level are the same on every line of a shape:
   * their whole `"key":value` text is made once, in `fixed` (m2gw never changes a logger's
   * meta in place; a new meta object is a new shape).
   */
  readonly order: ReadonlyArray<{ readonly quoted: string; readonly key: string; readonly from: 'fields' | 'fixed' | 'message' | 'timestamp'; readonly fixed: string }>;
  /** The line for this shape's fields and message (compileShape), or null when a value is not flat. */
  readonly write: ShapeWriter;
}

type ShapeWriter = (fields: AccessFields, message: string, now: () => string, json: typeof plainJson, quoteText: typeof quote) => string | null;

/**
 * The code that writes one shape's line, made once per shape: each field read by its own
 * name (a property load V8 caches, where a loop over the keys did a generic lookup per field)
 * and the fixed texts as literals. Every key and text in it is a JSON.stringify'd literal,
 * and keys come from m2gw's code, not from input. The access line: 1.73 → 1.1 µs.
 */
function compileShape(order: Shape['order']): ShapeWriter {
  let body = 'let t; let out = "{";\n';
  for (const k of order) {
    switch (k.from) {
      case 'fixed':
        body += `out += ${JSON.stringify(k.fixed)};\n`;
        break;
      case 'fields':
        body += `t = json(f[${JSON.stringify(k.key)}]); if (t === null) return null; if (t !== undefined) out += ${JSON.stringify(k.quoted)} + t;\n`;
        break;
      case 'message':
        body += `out += ${JSON.stringify(k.quoted)} + quote(message);\n`;
        break;
      case 'timestamp':
        // An ISO time has nothing to escape.
        body += `out += ${JSON.stringify(k.quoted + '"')} + now() + '"';\n`;
        break;
    }
  }
  // The first key's text has no comma before it; if that key was left out, the second's has.
  body += 'out += "}"; return out.charCodeAt(1) === 0x2c ? "{" + out.slice(2) : out;';
  try {
    return new Function('f', 'message', 'now', 'json', 'quote', body) as ShapeWriter;
  } catch {
    // Code generation refused (--disallow-code-generation-from-strings): the general path writes every line.
    return () => null;
  }
}

const shapes: Shape[] = [];

function shapeFor(meta: Record<string, unknown> | undefined, fields: AccessFields, given: readonly string[] | undefined): Shape | null {
  if (given !== undefined) {
    for (const s of shapes) if (s.meta === meta && s.given === given) return s;
  }
  const keys = given ? [...given] : Object.keys(fields);
  for (const s of shapes) {
    if (s.meta !== meta || s.fieldKeys.length !== keys.length) continue;
    let same = true;
    for (let i = 0; i < keys.length && same; i++) same = keys[i] === s.fieldKeys[i];
    if (same) return s;
  }
  type From = 'fields' | 'meta' | 'level' | 'message' | 'timestamp';
  const from = new Map<string, From>();
  if (meta) for (const k of Object.keys(meta)) from.set(k, 'meta');
  for (const k of keys) from.set(k, 'fields');
  if (from.has('timestamp')) return null; // a caller's own timestamp: the general path keeps it
  from.set('level', 'level');
  from.set('message', 'message');
  from.set('timestamp', 'timestamp');
  const order: Array<Shape['order'][number]> = [];
  for (const key of [...from.keys()].sort()) {
    const quoted = (order.length === 0 ? '' : ',') + quotedKey(key);
    const source = from.get(key)!;
    if (source === 'meta' || source === 'level') {
      const text = plainJson(source === 'level' ? 'info' : meta![key]);
      if (text === undefined) continue;
      if (text === null) return null; // a meta value that is not flat: the general path
      order.push({ key, quoted, from: 'fixed', fixed: quoted + text });
    } else {
      order.push({ key, quoted, from: source, fixed: '' });
    }
  }
  const shape: Shape = { meta, given, fieldKeys: keys, order, write: compileShape(order) };
  if (shapes.length >= 16) shapes.shift();
  shapes.push(shape);
  return shape;
}

/** The ISO time of the last millisecond asked for: many lines share one. */
let isoMs = -1;
let isoText = '';

function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/**
 * jsonLine({...meta, ...fields, level: 'info', message, timestamp}) without building that
 * record, or null when a value is not flat (the general path then writes it as jsonLine does).
 */
function flatLine(meta: Record<string, unknown> | undefined, fields: AccessFields, message: string, keys: readonly string[] | undefined): string | null {
  const shape = shapeFor(meta, fields, keys);
  if (shape === null) return null;
  return shape.write(fields, message, isoNow, plainJson, quote);
}

export function createLogger(cfg: Pick<LogConfig, 'level' | 'format' | 'file'>, meta: Record<string, unknown> = {}): Logger {
  const format =
    cfg.format === 'json'
      ? jsonFormat()
      : winston.format.combine(
          winston.format.timestamp(),
          winston.format.printf(({ timestamp, level, message, ...rest }) => {
            const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
            return `${String(timestamp)} ${level} ${String(message)}${extra}`;
          }),
        );
  const transport = cfg.file ? new LineFileTransport(cfg.file) : new winston.transports.Console();
  const logger = winston.createLogger({ level: cfg.level, format, transports: [transport], defaultMeta: meta });
  if (cfg.format === 'json') jsonLoggers.add(logger);
  return logger;
}

/**
 * Reopen file transports (after logrotate moved the file away). One that cannot be reopened
 * keeps writing to the file it has, where this says so.
 */
export function reopenLogFiles(logger: Logger): void {
  for (const t of logger.transports) {
    if (!(t instanceof LineFileTransport)) continue;
    const err = t.reopen();
    if (err) logger.warn('log file not reopened: still writing to the old one until the next SIGUSR1', { file: t.filename, error: String(err) });
  }
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
