/** What the Hono middleware takes (`sessionState(options)`), documented in docs/hono.md. */
import type { Context } from 'hono';
import type { ServiceBinding, SessionClient } from '../index.js';

export interface CookieOptions {
  /** The cookie's name, before the `__Host-` prefix (default `session`). */
  name?: string;
  /**
   * `true` (the default): `__Host-<name>`, `Secure`. `false`, for plain http on a host other than
   * localhost only: `<name>`, without `Secure`.
   */
  secure?: boolean;
  /** `Lax` (the default) or `Strict`. */
  sameSite?: 'Lax' | 'Strict';
}

export interface CsrfOptions {
  /**
   * Other origins allowed to send state-changing requests with the cookie (besides the request's
   * own): a list, or a predicate.
   */
  origin?: string[] | ((origin: string, c: Context) => boolean);
}

export interface SessionStateOptions {
  /** The session service: a service binding (`c.env.sessionService`) or a client. */
  service: (c: Context) => ServiceBinding | SessionClient;
  cookie?: CookieOptions;
  /**
   * Renew an id once it is this many seconds old (default 900), on the way out of a successful
   * response. Keep it below the service's idle timeout: a renewal also moves the expiry on.
   */
  renewAfter?: number | ((c: Context) => number);
  /** Refusing state-changing requests with the cookie from other sites: on unless `false`. */
  csrf?: false | CsrfOptions;
  /**
   * The field of the session's data that keeps its subject (default `sub`): what "log out
   * everywhere" and "your devices" act on. `set` and `merge` keep it as `login` wrote it.
   */
  subjectField?: string;
  /** Device info for "your devices" at login (default: the User-Agent and `CF-Connecting-IP`). */
  device?: (c: Context) => { label?: string; agent?: string; ip?: string };
}
