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
 * - session-state's retryable problems are answered `503` with `Retry-After`: never a logout.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import {
  type AuthLevel,
  type ServiceBinding,
  type SessionClient,
  type SessionData,
  type SessionHandle,
  type SessionId,
  type SubjectSession,
  createSessionClient,
  isSessionClient,
  SessionStateError,
} from './index.js';

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

/** The request's live session, as loaded. */
export interface LiveSession<T extends SessionData = SessionData> {
  data: T;
  subject: string | undefined;
  /** How "your devices" lists this session. */
  handle: SessionHandle;
  expiresAt: string;
  authenticatedAt: string;
  authLevel: AuthLevel;
  etag: string;
}

export interface LoginOptions {
  /** How the user just authenticated (1 when not given). */
  level?: AuthLevel;
  /** What "your devices" shows for this session ("Firefox on Linux"), 1–128 bytes. */
  label?: string;
}

/** `c.var.session`: the request's session, and what an app does with it. */
export interface RequestSession<T extends SessionData = SessionData> {
  /** The live session, or `null`; loaded at most once per request. */
  get(): Promise<LiveSession<T> | null>;
  /** Replaces the data (with the loaded version as `If-Match`: `412` if it moved since). */
  set(data: T): Promise<LiveSession<T>>;
  /** Merges `patch` into the data (likewise conditional). */
  merge(patch: Partial<T>): Promise<LiveSession<T>>;
  /** A new session for `subject` under a new id; any session the request carried is deleted. */
  login(subject: string, data?: T, options?: LoginOptions): Promise<LiveSession<T>>;
  /** The user authenticated again, at `level` (1 when not given): recorded, and a new id. */
  reauth(level?: AuthLevel): Promise<LiveSession<T>>;
  /** Ends the session and clears the cookie. */
  logout(): Promise<void>;
  /** Ends every session of the subject, this one included, and clears the cookie; how many ended. */
  logoutEverywhere(): Promise<number>;
  /** The subject's live sessions ("your devices"), this one marked `current`. */
  devices(): Promise<SubjectSession[]>;
  /** Ends the subject's session listed as `handle` (this one too: then the cookie is cleared). */
  signOut(handle: SessionHandle): Promise<boolean>;
}

/** The variables the middleware sets: `new Hono<{ Variables: SessionVariables<MyData> }>()`. */
export type SessionVariables<T extends SessionData = SessionData> = { session: RequestSession<T> };

type Env = { Variables: SessionVariables };

const DEFAULT_RENEW_AFTER = 900;
const ID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|[A-Za-z0-9_-]{43})$/;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Renewals in flight in this isolate, by the id they renew. */
const renewals = new Map<SessionId, Promise<Issued>>();

/** What the service reports of a session with its data. */
type Meta = Pick<LiveSession, 'expiresAt' | 'authenticatedAt' | 'authLevel' | 'etag'>;

/** An id as the cookie carries it: `<id>.<issued at, seconds>`. */
interface Carried {
  id: SessionId;
  issuedAt: number;
}

/** A new id and what the service said of it. */
interface Issued {
  id: SessionId;
  expiresAt: string;
}

export function sessionState(options: SessionStateOptions): MiddlewareHandler<Env> {
  const cookie = cookieSettings(options.cookie);
  const subjectField = options.subjectField ?? 'sub';
  return async (c, next) => {
    const carried = parseCookie(getCookie(c, cookie.name));
    if (carried && options.csrf !== false && !SAFE_METHODS.has(c.req.method) && crossSite(c, options.csrf ?? {})) {
      return refuseCrossSite(c);
    }
    const client = clientOf(options.service(c));
    const state = new State(c, client, carried, subjectField, options);
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

class State<T extends SessionData> implements RequestSession<T> {
  #loaded: Promise<LiveSession<T> | null> | undefined;
  /** What the response must do to the cookie: set it to a new id, or clear it. */
  #outcome: { set: Issued } | { clear: true } | undefined;
  /** The id the request is about now (the cookie's, or a new one). */
  #id: SessionId | undefined;

  constructor(
    private readonly c: Context,
    private readonly client: SessionClient,
    private readonly carried: Carried | null,
    private readonly subjectField: string,
    private readonly options: SessionStateOptions,
  ) {
    this.#id = carried?.id;
  }

  get(): Promise<LiveSession<T> | null> {
    this.#loaded ??= this.#load();
    return this.#loaded;
  }

  async #load(): Promise<LiveSession<T> | null> {
    const id = this.#id;
    if (!id) return null;
    const found = await this.client.get<T>(id);
    if (!found) {
      // Ended, expired or reused: the cookie goes.
      if (this.carried) this.#outcome = { clear: true };
      return null;
    }
    return this.#live(id, found.data, found);
  }

  async #live(id: SessionId, data: T, meta: Meta): Promise<LiveSession<T>> {
    const subject = data[this.subjectField];
    return {
      data,
      subject: typeof subject === 'string' ? subject : undefined,
      handle: await handleOf(id),
      expiresAt: meta.expiresAt,
      authenticatedAt: meta.authenticatedAt,
      authLevel: meta.authLevel,
      etag: meta.etag,
    };
  }

  async #required(): Promise<[SessionId, LiveSession<T>]> {
    const session = await this.get();
    if (!session || !this.#id) throw new SessionStateError(404, 'session_not_found', 'The request carries no live session.');
    return [this.#id, session];
  }

  #keep(session: LiveSession<T>, data: T): T {
    return session.subject === undefined ? data : { ...data, [this.subjectField]: session.subject };
  }

  async set(data: T): Promise<LiveSession<T>> {
    const [id, session] = await this.#required();
    const written = await this.client.update(id, this.#keep(session, data), { ifMatch: session.etag });
    return this.#written(id, written.data, written);
  }

  async merge(patch: Partial<T>): Promise<LiveSession<T>> {
    const [id, session] = await this.#required();
    if (this.subjectField in patch && patch[this.subjectField] !== session.subject) {
      throw new TypeError(`merge cannot change the session's subject (${this.subjectField})`);
    }
    const written = await this.client.add<T>(id, patch, { ifMatch: session.etag });
    return this.#written(id, written.data, written);
  }

  /** The session as a write left it: what the rest of the request reads, and the cookie's expiry. */
  async #written(id: SessionId, data: T, meta: Meta): Promise<LiveSession<T>> {
    const live = await this.#live(id, data, meta);
    this.#loaded = Promise.resolve(live);
    this.#outcome = { set: { id, expiresAt: meta.expiresAt } };
    return live;
  }

  async login(subject: string, data = {} as T, options: LoginOptions = {}): Promise<LiveSession<T>> {
    // Login CSRF: another site must not sign the browser into an account of its choosing, even
    // without a cookie to ride on.
    if (this.options.csrf !== false && crossSite(this.c, this.options.csrf ?? {})) throw new CrossSiteLogin();
    const stored = { ...data, [this.subjectField]: subject } as T;
    const device = { ...(this.options.device ?? defaultDevice)(this.c) };
    if (options.label !== undefined) device.label = options.label;
    const created = await this.client.create(stored, {
      subject,
      ...definedOnly(device),
      ...(options.level === undefined ? {} : { authLevel: options.level }),
    });
    const before = this.#id;
    this.#adopt(created);
    // A pre-login id never survives a login (session fixation): it is deleted, whoever's it was.
    if (before) await this.client.delete(before);
    return this.#written(created.id, stored, created);
  }

  async reauth(level?: AuthLevel): Promise<LiveSession<T>> {
    const [id, session] = await this.#required();
    const moved = await this.client.reauth(id, level === undefined ? {} : { authLevel: level });
    this.#adopt(moved);
    return this.#written(moved.id, session.data, moved);
  }

  #adopt(issued: Issued) {
    this.#id = issued.id;
    this.#outcome = { set: issued };
  }

  async logout(): Promise<void> {
    const id = this.#id;
    if (id) await this.client.delete(id);
    this.#ended();
  }

  #ended() {
    this.#id = undefined;
    this.#loaded = Promise.resolve(null);
    this.#outcome = { clear: true };
  }

  async logoutEverywhere(): Promise<number> {
    const [id, session] = await this.#required();
    const ended = session.subject === undefined
      ? (await this.client.delete(id), 1)
      : await this.client.subjects.revoke(session.subject);
    this.#ended();
    return ended;
  }

  async devices(): Promise<SubjectSession[]> {
    const [id, session] = await this.#required();
    if (session.subject === undefined) return [];
    return this.client.subjects.list(session.subject, { current: id });
  }

  async signOut(handle: SessionHandle): Promise<boolean> {
    const [, session] = await this.#required();
    if (session.subject === undefined) return false;
    const ended = await this.client.subjects.revokeOne(session.subject, handle);
    if (ended && handle === session.handle) this.#ended();
    return ended;
  }

  /**
   * On the way out: the cookie as the request left it, or, for an id old enough, renewed; never
   * on a failed response, and never once the request changed or ended the session.
   */
  async finish(cookie: CookieSettings, renewAfter: number) {
    const outcome = this.#outcome;
    if (outcome && 'clear' in outcome) return clearCookie(this.c, cookie);
    if (outcome) return writeCookie(this.c, cookie, outcome.set, outcome.set.id === this.carried?.id ? this.carried.issuedAt : now());
    const carried = this.carried;
    if (!carried || this.c.res.status >= 400 || now() - carried.issuedAt < renewAfter) return;
    try {
      writeCookie(this.c, cookie, await renewShared(this.client, carried.id), now());
    } catch (err) {
      // An id that no longer reaches a session: the cookie goes. Anything else is thrown.
      if (err instanceof SessionStateError && err.code === 'session_not_found') return clearCookie(this.c, cookie);
      throw err;
    }
  }
}

/**
 * One renewal of `id` for every request of this isolate that carries it while that renewal is in
 * flight. Only while in flight: a request after it asks the service again, which answers the same
 * new id within its grace window (and nothing after it, as it must: a later presentation of the
 * old id is reuse).
 */
function renewShared(client: SessionClient, id: SessionId): Promise<Issued> {
  const shared = renewals.get(id);
  if (shared) return shared;
  const renewed = client
    .renew(id)
    .then(({ id: next, expiresAt }) => ({ id: next, expiresAt }))
    .finally(() => renewals.delete(id));
  renewals.set(id, renewed);
  return renewed;
}

interface CookieSettings {
  name: string;
  secure: boolean;
  sameSite: 'Lax' | 'Strict';
}

function cookieSettings(options: CookieOptions = {}): CookieSettings {
  const secure = options.secure ?? true;
  const base = options.name ?? 'session';
  return { name: secure ? `__Host-${base}` : base, secure, sameSite: options.sameSite ?? 'Lax' };
}

function writeCookie(c: Context, cookie: CookieSettings, issued: Issued, issuedAt: number) {
  setCookie(c, cookie.name, `${issued.id}.${issuedAt}`, {
    path: '/',
    secure: cookie.secure,
    httpOnly: true,
    sameSite: cookie.sameSite,
    expires: new Date(issued.expiresAt),
  });
  noStore(c);
}

function clearCookie(c: Context, cookie: CookieSettings) {
  setCookie(c, cookie.name, '', { path: '/', secure: cookie.secure, httpOnly: true, sameSite: cookie.sameSite, maxAge: 0 });
  noStore(c);
}

/** A response that sets a session cookie is nobody else's to keep. */
function noStore(c: Context) {
  if (!c.res.headers.has('cache-control')) c.header('Cache-Control', 'no-store');
}

function parseCookie(value: string | undefined): Carried | null {
  if (!value) return null;
  const dot = value.lastIndexOf('.');
  const id = value.slice(0, dot);
  const issuedAt = Number(value.slice(dot + 1));
  if (dot < 0 || !ID.test(id) || !Number.isSafeInteger(issuedAt)) return null;
  return { id, issuedAt };
}

/** Whether a state-changing request comes from another site (`Sec-Fetch-Site`, else `Origin`). */
function crossSite(c: Context, csrf: CsrfOptions): boolean {
  const origin = c.req.header('origin');
  const allowed = (value: string) =>
    value === new URL(c.req.url).origin ||
    (typeof csrf.origin === 'function' ? csrf.origin(value, c) : (csrf.origin ?? []).includes(value));
  const site = c.req.header('sec-fetch-site');
  if (site !== undefined) return site !== 'same-origin' && !(origin !== undefined && allowed(origin));
  // No Sec-Fetch-Site: an older browser (which sends Origin on a cross-origin write) or no browser.
  return origin !== undefined && !allowed(origin);
}

/** What `login` throws for a request from another site; the middleware answers it `403`. */
class CrossSiteLogin extends Error {
  override readonly name = 'CrossSiteLogin';
}

function refuseCrossSite(c: Context) {
  const body = JSON.stringify({ code: 'cross_site_request', detail: 'A state-changing request from another site.' });
  // Cleared first: Hono would otherwise carry the failed response's headers over.
  c.res = undefined;
  c.res = new Response(body, { status: 403, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
}

function unauthenticated(c: Context, redirect: string | undefined) {
  if (redirect) return c.redirect(redirect, 303);
  return c.json({ code: 'unauthenticated', detail: 'This needs a live session.' }, 401);
}

function retryable(err: unknown): err is SessionStateError {
  return err instanceof SessionStateError && err.retryable;
}

/** A retryable problem of the service: `503`, and when to try again; the cookie stays. */
function unavailable(c: Context, err: SessionStateError) {
  const body = JSON.stringify({ code: err.code, detail: 'Sessions are briefly unavailable; try again.' });
  // Cleared first: Hono would otherwise carry the failed response's headers over.
  c.res = undefined;
  c.res = new Response(body, {
    status: 503,
    headers: { 'content-type': 'application/json', 'retry-after': String(err.retryAfter ?? 1), 'cache-control': 'no-store' },
  });
}

function renewAfterOf(options: SessionStateOptions, c: Context): number {
  const value = typeof options.renewAfter === 'function' ? options.renewAfter(c) : options.renewAfter;
  return value ?? DEFAULT_RENEW_AFTER;
}

function clientOf(service: ServiceBinding | SessionClient): SessionClient {
  return isSessionClient(service) ? service : createSessionClient(service);
}

function defaultDevice(c: Context): { label?: string; agent?: string; ip?: string } {
  const agent = c.req.header('user-agent');
  const ip = c.req.header('cf-connecting-ip');
  return {
    ...(agent ? { agent: truncateBytes(agent, 512) } : {}),
    ...(ip && /^[0-9a-fA-F:.]{2,45}$/.test(ip) ? { ip } : {}),
  };
}

function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function truncateBytes(text: string, bytes: number): string {
  const encoder = new TextEncoder();
  let out = text.slice(0, bytes);
  while (encoder.encode(out).length > bytes) out = out.slice(0, -1);
  return out;
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

/** The handle a session is listed under: `docs/storage.md`'s derivation from its id. */
async function handleOf(id: SessionId): Promise<SessionHandle> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`session-state/v1/handle\0${id}`));
  return [...new Uint8Array(digest).slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
