/**
 * Every fuzz target, in the order the runs report them. A new codec gets a file in
 * fuzz/targets/ exporting a FuzzTarget (see core.ts) and one line here; the CI pass
 * (test/unit/fuzz.test.ts) and `npm run fuzz` pick it up from this list.
 */
import type { FuzzTarget } from './core.js';
import { configTarget } from './targets/config.js';
import { cgiHeadTarget, fastcgiRecordsTarget, nameValuePairsTarget } from './targets/fastcgi.js';
import { ifNoneMatchTarget, rangeTarget, requestPathTarget } from './targets/http-fields.js';
import { httpResponseTarget } from './targets/http-response.js';
import { creditsFastPathTarget, lenientJsonTarget, requestJsonTarget, requestTnetTarget, tnetstringTarget } from './targets/mongrel2.js';
import { websocketClientTarget, websocketUpstreamTarget } from './targets/websocket.js';
import { zmtpHandshakeTarget, zmtpTarget } from './targets/zmtp.js';

export const targets: FuzzTarget[] = [
  zmtpTarget,
  zmtpHandshakeTarget,
  tnetstringTarget,
  lenientJsonTarget,
  requestJsonTarget,
  requestTnetTarget,
  creditsFastPathTarget,
  fastcgiRecordsTarget,
  nameValuePairsTarget,
  cgiHeadTarget,
  httpResponseTarget,
  configTarget,
  rangeTarget,
  ifNoneMatchTarget,
  requestPathTarget,
  websocketClientTarget,
  websocketUpstreamTarget,
];
