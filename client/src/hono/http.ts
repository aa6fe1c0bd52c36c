/**
 * What the middleware reads from and writes to HTTP: the session cookie (its settings, its value
 * `<id>.<issued at>`), the cross-site check, and its own answers (401, 403, 503).
 */
import type { Context } from 'hono';
import { setCookie } from 'hono/cookie';
import { type SessionId, SessionStateError } from '../index.js';
import type { CookieOptions, CsrfOptions } from './options.js';

const ID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|[A-Za-z0-9_-]{43})$/;

/**
 * An id as the cookie carries it: `<id>.<issued at, seconds>`, and `.b` after it for an id bound
 * to a device key (DBSC), which the middleware never renews: only the browser's refresh does.
 */
export interface Carried {
  id: SessionId;
  issuedAt: number;
  bound: boolean;
}

/** A new id and what the service said of it (`idExpiresAt`: a bound id's end). */
export interface Issued {
  id: SessionId;
  expiresAt: string;
  idExpiresAt?: string;
}

export interface CookieSettings {
  name: string;
  secure: boolean;
  sameSite: 'Lax' | 'Strict';
}

export function cookieSettings(options: CookieOptions = {}): CookieSettings {
  const secure = options.secure ?? true;
  const base = options.name ?? 'session';
  return { name: secure ? `__Host-${base}` : base, secure, sameSite: options.sameSite ?? 'Lax' };
}

export function writeCookie(c: Context, cookie: CookieSettings, issued: Issued, issuedAt: number) {
  const attributes = { path: '/', secure: cookie.secure, httpOnly: true, sameSite: cookie.sameSite } as const;
  if (issued.idExpiresAt === undefined) {
    setCookie(c, cookie.name, `${issued.id}.${issuedAt}`, { ...attributes, expires: new Date(issued.expiresAt) });
  } else {
    setCookie(c, cookie.name, `${issued.id}.${issuedAt}.b`, { ...attributes, maxAge: boundMaxAge(issued.idExpiresAt) });
  }
  noStore(c);
}

/**
 * How long the browser keeps a bound id's cookie: until a little before the service stops taking
 * the id (a tenth of its life, at most 30 s), so a request in flight at the end never presents an
 * id past its life, which the service takes for a copy (reuse). Relative (`Max-Age`), so the
 * browser's clock does not matter.
 */
function boundMaxAge(idExpiresAt: string): number {
  const life = Math.floor((Date.parse(idExpiresAt) - Date.now()) / 1000);
  return Math.max(1, life - Math.min(30, Math.floor(life / 10)));
}

export function clearCookie(c: Context, cookie: CookieSettings) {
  setCookie(c, cookie.name, '', { path: '/', secure: cookie.secure, httpOnly: true, sameSite: cookie.sameSite, maxAge: 0 });
  noStore(c);
}

/** A response that sets a session cookie is nobody else's to keep. */
export function noStore(c: Context) {
  if (!c.res.headers.has('cache-control')) c.header('Cache-Control', 'no-store');
}

export function parseCookie(value: string | undefined): Carried | null {
  if (!value) return null;
  const bound = value.endsWith('.b');
  const rest = bound ? value.slice(0, -2) : value;
  const dot = rest.lastIndexOf('.');
  const id = rest.slice(0, dot);
  const issuedAt = Number(rest.slice(dot + 1));
  if (dot < 0 || !ID.test(id) || !Number.isSafeInteger(issuedAt)) return null;
  return { id, issuedAt, bound };
}

/** Whether a state-changing request comes from another site (`Sec-Fetch-Site`, else `Origin`). */
export function crossSite(c: Context, csrf: CsrfOptions): boolean {
  const origin = c.req.header('origin');
  const allowed = (value: string) =>
    value === new URL(c.req.url).origin ||
    (typeof csrf.origin === 'function' ? csrf.origin(value, c) : (csrf.origin ?? []).includes(value));
  const site = c.req.header('sec-fetch-site');
  if (site !== undefined) return site !== 'same-origin' && !(origin !== undefined && allowed(origin));
  // No Sec-Fetch-Site: an older browser (which sends Origin on a cross-origin write) or no browser.
  return origin !== undefined && !allowed(origin);
}

export function refuseCrossSite(c: Context) {
  replace(c, 403, { code: 'cross_site_request', detail: 'A state-changing request from another site.' });
}

export function unauthenticated(c: Context, redirect: string | undefined) {
  if (redirect) return c.redirect(redirect, 303);
  return c.json({ code: 'unauthenticated', detail: 'This needs a live session.' }, 401);
}

export function retryable(err: unknown): err is SessionStateError {
  return err instanceof SessionStateError && err.retryable;
}

/** A retryable problem of the service: `503`, and when to try again; the cookie stays. */
export function unavailable(c: Context, err: SessionStateError) {
  const body = { code: err.code, detail: 'Sessions are briefly unavailable; try again.' };
  replace(c, 503, body, { 'retry-after': String(err.retryAfter ?? 1) });
}

/** The middleware's own answer in place of whatever the request had come to. */
function replace(c: Context, status: number, body: object, headers: Record<string, string> = {}) {
  // Cleared first: Hono would otherwise carry the replaced response's headers (its cookies) over.
  c.res = undefined;
  c.res = new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
  });
}
