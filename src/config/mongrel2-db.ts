/**
 * Reads Mongrel2's compiled configuration (the SQLite file `m2sh load` writes) into plain
 * objects, for `m2gw check --mongrel2`. The DB is what Mongrel2 actually runs, so it is
 * checked rather than the .conf (which m2sh parses with its own quirks).
 *
 * SQLite comes from sql.js (SQLite compiled to WebAssembly): it installs from npm with no
 * native build and no download at install time, and works on every Node m2gw supports
 * (node:sqlite needs a flag on Node 20). The file is read once into memory and only
 * SELECTed; it is never written.
 */
import fs from 'node:fs';
import initSqlJs, { type Database, type SqlValue } from 'sql.js';

export interface Mongrel2Handler {
  readonly id: number;
  readonly sendSpec: string;
  readonly sendIdent: string;
  readonly recvSpec: string;
  readonly recvIdent: string;
  readonly protocol: string;
}

export interface Mongrel2Server {
  readonly id: number;
  readonly uuid: string;
  readonly name: string;
  /** As written in the .conf: absolute, or relative to the directory mongrel2 starts in. */
  readonly chroot: string;
  readonly port: number;
}

export interface Mongrel2Route {
  readonly path: string;
  readonly hostName: string;
  readonly server: Mongrel2Server;
  /** "handler", "dir" or "proxy". */
  readonly targetType: string;
  /** Set when targetType is "handler" and the handler row exists. */
  readonly handler: Mongrel2Handler | null;
}

export interface Mongrel2Db {
  readonly file: string;
  readonly servers: readonly Mongrel2Server[];
  readonly handlers: readonly Mongrel2Handler[];
  readonly routes: readonly Mongrel2Route[];
  /** The settings = {...} table, values as m2sh stored them (text). */
  readonly settings: ReadonlyMap<string, string>;
}

export class Mongrel2DbError extends Error {}

const REQUIRED_TABLES = ['server', 'host', 'route', 'handler', 'setting'];

export async function readMongrel2Db(file: string): Promise<Mongrel2Db> {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Mongrel2DbError(`cannot read ${file}: ${code === 'ENOENT' ? 'file not found' : String(err)}`);
  }
  const SQL = await initSqlJs();
  let db: Database;
  try {
    db = new SQL.Database(bytes);
  } catch (err) {
    throw new Mongrel2DbError(`${file} is not an SQLite database: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return readTables(db, file);
  } finally {
    db.close();
  }
}

function readTables(db: Database, file: string): Mongrel2Db {
  let tables: Set<string>;
  try {
    tables = new Set(rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'").map((r) => text(r[0])));
  } catch (err) {
    // sql.js opens any bytes lazily; the first query is where "file is not a database" shows.
    throw new Mongrel2DbError(`${file} is not an SQLite database: ${err instanceof Error ? err.message : String(err)}`);
  }
  const missing = REQUIRED_TABLES.filter((t) => !tables.has(t));
  if (missing.length > 0) {
    throw new Mongrel2DbError(`${file} is not a Mongrel2 config database (made by m2sh load): no table ${missing.join(', ')}`);
  }
  const handlers = rows(db, 'SELECT id, send_spec, send_ident, recv_spec, recv_ident, protocol FROM handler ORDER BY id').map(
    (r): Mongrel2Handler => ({
      id: num(r[0]),
      sendSpec: text(r[1]),
      sendIdent: text(r[2]),
      recvSpec: text(r[3]),
      recvIdent: text(r[4]),
      protocol: text(r[5]) || 'json',
    }),
  );
  const servers = rows(db, 'SELECT id, uuid, name, chroot, port FROM server ORDER BY id').map(
    (r): Mongrel2Server => ({ id: num(r[0]), uuid: text(r[1]), name: text(r[2]), chroot: text(r[3]), port: num(r[4]) }),
  );
  const handlerById = new Map(handlers.map((h) => [h.id, h]));
  const serverById = new Map(servers.map((s) => [s.id, s]));
  const routes: Mongrel2Route[] = [];
  const sql = 'SELECT route.path, host.name, host.server_id, route.target_type, route.target_id FROM route JOIN host ON route.host_id = host.id ORDER BY route.id';
  for (const r of rows(db, sql)) {
    const server = serverById.get(num(r[2]));
    if (server === undefined) continue; // a host of no server is never served
    const targetType = text(r[3]);
    routes.push({
      path: text(r[0]),
      hostName: text(r[1]),
      server,
      targetType,
      handler: targetType === 'handler' ? (handlerById.get(num(r[4])) ?? null) : null,
    });
  }
  const settings = new Map(rows(db, 'SELECT key, value FROM setting ORDER BY id').map((r) => [text(r[0]), text(r[1])] as const));
  return { file, servers, handlers, routes, settings };
}

function rows(db: Database, sql: string): SqlValue[][] {
  return db.exec(sql)[0]?.values ?? [];
}

function text(v: SqlValue | undefined): string {
  return v === null || v === undefined ? '' : typeof v === 'string' ? v : String(v);
}

function num(v: SqlValue | undefined): number {
  return typeof v === 'number' ? v : Number(v ?? NaN);
}
