/**
 * The supervisor's admin listener (/healthz, /readyz, /metrics, /status): opened at start,
 * moved by a reload that changes its address or token, closed at the end. Apart from
 * supervisor.ts because it is its own small lifecycle.
 */
import { startAdminServer, type AdminProvider, type AdminServer } from '../admin/admin-server.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';

/** What the listener depends on in the config: a reload that changes neither keeps it open. */
function key(config: Config): string | null {
  return config.admin ? `${config.admin.listen}\n${config.admin.token ?? ''}` : null;
}

export class AdminListener {
  private server: AdminServer | null = null;

  constructor(
    private readonly provider: AdminProvider,
    /** A getter: the supervisor's logger is replaced by every reload. */
    private readonly log: () => Logger,
  ) {}

  /** Where it listens (the port resolved), or null when it does not. */
  get address(): string | null {
    return this.server?.address ?? null;
  }

  /** Open it if the config wants one; a failure is logged, m2gw runs on without it. */
  async start(config: Config): Promise<void> {
    if (!config.admin) return;
    try {
      this.server = await this.open(config.admin);
    } catch (err) {
      this.log().error('admin listener failed', { listen: config.admin.listen, error: String(err) });
    }
  }

  /**
   * After a reload from `prev` to `next`: move it if its address or token changed. The new
   * listener opens before the old one closes, so a new address that is busy leaves the old
   * one serving instead of none (no /status, and `m2gw reload` waiting in vain); at the same
   * address both cannot be open, so the old one closes first and comes back if the new one
   * fails. Returns why it did not move (the reload then reports a failure), or null.
   */
  async apply(prev: Config, next: Config): Promise<string | null> {
    if (key(next) === key(prev)) return null;
    const sameAddress = prev.admin?.listen === next.admin?.listen;
    if (!next.admin || sameAddress) await this.close();
    if (!next.admin) return null;
    let server: AdminServer;
    try {
      server = await this.open(next.admin);
    } catch (err) {
      this.log().error('admin listener failed', { listen: next.admin.listen, error: String(err) });
      if (!this.server) await this.start(prev);
      const where = this.address === null ? 'none open' : `still on ${this.address} with the previous settings`;
      return `the admin listener could not move to ${next.admin.listen} (${String(err)}); ${where}`;
    }
    await this.close();
    this.server = server;
    return null;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.close();
  }

  private async open(admin: NonNullable<Config['admin']>): Promise<AdminServer> {
    const server = await startAdminServer(admin.listen, this.provider, this.log, { token: admin.token });
    this.log().info('admin listener', { address: server.address });
    return server;
  }
}
