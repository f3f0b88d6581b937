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
      this.server = await startAdminServer(config.admin.listen, this.provider, this.log, { token: config.admin.token });
      this.log().info('admin listener', { address: this.server.address });
    } catch (err) {
      this.log().error('admin listener failed', { listen: config.admin.listen, error: String(err) });
    }
  }

  /** After a reload from `prev` to `next`: reopen it if its address or token changed. */
  async apply(prev: Config, next: Config): Promise<void> {
    if (key(next) === key(prev)) return;
    await this.close();
    await this.start(next);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.close();
  }
}
