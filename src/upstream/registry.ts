/** Builds every configured upstream. The only place that knows the upstream kinds. */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { createFastcgiUpstream } from './fastcgi/fastcgi-upstream.js';
import { createHttpUpstream } from './http/http-upstream.js';
import type { Upstream } from './upstream.js';

export function createUpstreams(config: Config, logger: Logger): Map<string, Upstream> {
  const map = new Map<string, Upstream>();
  for (const [name, cfg] of Object.entries(config.upstreams)) {
    const child = logger.child({ upstream: name });
    map.set(name, cfg.type === 'http' ? createHttpUpstream(cfg, child) : createFastcgiUpstream(cfg, child));
  }
  return map;
}
