/**
 * Sessions in a Hono app: a middleware that owns the session cookie and the id's life.
 *
 *     import { sessionState, requireSession } from '@session-state/client/hono';
 *     app.use(sessionState({ service: (c) => c.env.sessionService }));
 *     app.get('/me', requireSession(), async (c) => c.json((await c.var.session.get())!.data));
 *
 * What it does for every request, so that no route has to:
 * - the id travels only in a cookie: `__Host-session`, `Secure`, `HttpOnly`, `SameSite=Lax`,
 *   `Path=/`, no `Domain`, expiring with the session (`cookie.secure: false` drops the prefix and
 *   `Secure`, for plain http on a host other than localhost, which browsers treat as secure);
 * - `c.var.session` loads the session at most once per request, and writes it with the loaded
 *   version as `If-Match`; `login` always issues a new id (a pre-login id never survives it);
 * - an id older than `renewAfter` seconds is renewed on the way out of a successful response,
 *   once per id however many requests of this isolate carry it at once; the service's grace
 *   window keeps parallel requests and other tabs that still send the old id logged in;
 * - a state-changing request that carries the cookie from another site is refused (`403`), by
 *   `Sec-Fetch-Site`, else by `Origin`; so is a login from another site, cookie or not;
 * - session-state's retryable problems are answered `503` with `Retry-After`: never a logout;
 * - with `dbsc`, each login's session is bound to a key the browser keeps (W3C DBSC): the cookie
 *   then holds a short-lived id that only the browser's signed refresh replaces (`dbsc.ts`).
 */
import type { MiddlewareHandler, Context } from 'hono';
import { getCookie } from 'hono/cookie';
import {
  type AuthLevel,
  type ServiceBinding,
  type SessionClient,
  createSessionClient,
  isSessionClient,
} from '../index.js';
import { cookieSettings, parseCookie, crossSite, refuseCrossSite, retryable, unauthenticated, unavailable } from './http.js';
import { dbscSettings, serveDbsc } from './dbsc.js';
import type { SessionStateOptions } from './options.js';
import { CrossSiteLogin, State, type SessionVariables } from './session.js';

export type { CookieOptions, CsrfOptions, DbscOptions, SessionStateOptions } from './options.js';
export type { LiveSession, LoginOptions, RequestSession, SessionVariables } from './session.js';

type Env = { Variables: SessionVariables };

const DEFAULT_RENEW_AFTER = 900;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function sessionState(options: SessionStateOptions): MiddlewareHandler<Env> {
  const cookie = cookieSettings(options.cookie);
  const subjectField = options.subjectField ?? 'sub';
  const dbsc = dbscSettings(options.dbsc);
  return async (c, next) => {
    const carried = parseCookie(getCookie(c, cookie.name));
    if (carried && options.csrf !== false && !SAFE_METHODS.has(c.req.method) && crossSite(c, options.csrf ?? {})) {
      return refuseCrossSite(c);
    }
    const client = clientOf(options.service(c));
    if (dbsc) {
      const served = await serveDbsc(c, dbsc, client, cookie, carried);
      if (served) return served;
    }
    const state = new State(c, client, carried, subjectField, options, dbsc);
    c.set('session', state);
    await next();

    if (retryable(c.error)) return unavailable(c, c.error);
    if (c.error instanceof CrossSiteLogin) return refuseCrossSite(c);
    try {
      await state.finish(cookie, renewAfterOf(options, c));
    } catch (err) {
      if (retryable(err)) return unavailable(c, err);
      throw err;
    }
  };
}

/** Answers `401` (or redirects to `redirect`) without a live session. */
export function requireSession(options: { redirect?: string } = {}): MiddlewareHandler<Env> {
  return async (c, next) => {
    if (!(await c.var.session.get())) return unauthenticated(c, options.redirect);
    await next();
  };
}

/**
 * Answers `401` without a live session, and `403 reauthentication_required` (or redirects to
 * `redirect`) when its last authentication is older than `maxAge` seconds or below `minLevel`,
 * as the service's `Session-Max-Auth-Age` and `Session-Min-Auth-Level` judge it.
 */
export function requireAuth(
  demand: { maxAge?: number; minLevel?: AuthLevel; redirect?: string; unauthenticated?: string },
): MiddlewareHandler<Env> {
  return async (c, next) => {
    const session = await c.var.session.get();
    if (!session) return unauthenticated(c, demand.unauthenticated ?? demand.redirect);
    const authAge = Math.floor((Date.now() - Date.parse(session.authenticatedAt)) / 1000);
    const stale = demand.maxAge !== undefined && !(authAge <= demand.maxAge);
    const weak = demand.minLevel !== undefined && session.authLevel < demand.minLevel;
    if (stale || weak) {
      if (demand.redirect) return c.redirect(demand.redirect, 303);
      const { authenticatedAt, authLevel } = session;
      return c.json({ code: 'reauthentication_required', authenticatedAt, authAge, authLevel }, 403);
    }
    await next();
  };
}

function renewAfterOf(options: SessionStateOptions, c: Context): number {
  const value = typeof options.renewAfter === 'function' ? options.renewAfter(c) : options.renewAfter;
  return value ?? DEFAULT_RENEW_AFTER;
}

function clientOf(service: ServiceBinding | SessionClient): SessionClient {
  return isSessionClient(service) ? service : createSessionClient(service);
}
