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

/** Device-bound sessions (W3C DBSC): see docs/dbsc.md. */
export interface DbscOptions {
  /** Where the browser registers its key (default `/.session-state/dbsc/register`). */
  registrationPath?: string;
  /** Where the browser refreshes the bound cookie (default `/.session-state/dbsc/refresh`). */
  refreshPath?: string;
  /** The algorithms offered to the browser (default both, ES256 first). */
  algorithms?: ('ES256' | 'RS256')[];
  /**
   * Called when the browser says it skipped a refresh (`Secure-Session-Skipped`, e.g.
   * `quota_exceeded`): the request then comes without the bound cookie. Default: one warning
   * naming the reason (never the identifier).
   */
  onSkipped?: (skipped: { reason: string; sessionIdentifier?: string }[], c: Context) => void;
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
  /**
   * Bind each login's session to a key the browser keeps (W3C DBSC): `true` for the defaults. The
   * session's cookie then holds a short-lived id (`BOUND_SESSION_ID_SECONDS` of the service)
   * that only the browser's refresh, signed with its key, replaces: a copied cookie stops working
   * with it. Browsers without DBSC keep the ordinary cookie and renewal.
   */
  dbsc?: boolean | DbscOptions;
  /** Device info for "your devices" at login (default: the User-Agent and `CF-Connecting-IP`). */
  device?: (c: Context) => { label?: string; agent?: string; ip?: string };
}
