/**
 * `c.var.session`: one request's session, loaded at most once, and everything an app does with it
 * (write, log in, step up, log out, devices); what the response must do to the cookie; renewal.
 */
import type { Context } from 'hono';
import {
  type AuthLevel,
  type SessionClient,
  type SessionData,
  type SessionHandle,
  type SessionId,
  type SubjectSession,
  SessionStateError,
} from '../index.js';
import { type Carried, type CookieSettings, type Issued, clearCookie, crossSite, writeCookie } from './http.js';
import { type DbscSettings, registrationHeader } from './dbsc.js';
import type { SessionStateOptions } from './options.js';

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

/** What the service reports of a session with its data. */
type Meta = Pick<LiveSession, 'expiresAt' | 'authenticatedAt' | 'authLevel' | 'etag'>;

/** Renewals in flight in this isolate, by the id they renew. */
const renewals = new Map<SessionId, Promise<Issued>>();

/** What `login` throws for a request from another site; the middleware answers it `403`. */
export class CrossSiteLogin extends Error {
  override readonly name = 'CrossSiteLogin';
}

export class State<T extends SessionData> implements RequestSession<T> {
  #loaded: Promise<LiveSession<T> | null> | undefined;
  /** What the response must do to the cookie: set it to a new id, or clear it. */
  #outcome: { set: Issued } | { clear: true } | undefined;
  /** The id the request is about now (the cookie's, or a new one). */
  #id: SessionId | undefined;
  /** A `Secure-Session-Registration` for the response: a login with `dbsc` on. */
  #registration: string | undefined;

  constructor(
    private readonly c: Context,
    private readonly client: SessionClient,
    private readonly carried: Carried | null,
    private readonly subjectField: string,
    private readonly options: SessionStateOptions,
    /** The middleware's DBSC settings, `null` without the option. */
    private readonly dbsc: DbscSettings | null,
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
    const dbsc = this.dbsc;
    if (dbsc) {
      // The browser binds the new id to a key of its own, then holds only short-lived bound ids.
      // Binding strengthens a login; it never fails one: a service that cannot offer it (busy,
      // or a version without `/bind`) leaves this login unbound, said once in the log.
      try {
        const challenge = await this.client.binding.registrationChallenge(created.id);
        this.#registration = registrationHeader(dbsc, challenge);
      } catch (err) {
        if (!(err instanceof SessionStateError)) throw err;
        console.warn(`session-state: DBSC registration not offered: ${err.code}`);
      }
    }
    return this.#written(created.id, stored, created);
  }

  async reauth(level?: AuthLevel): Promise<LiveSession<T>> {
    const [id, session] = await this.#required();
    const moved = await this.client.reauth(id, level === undefined ? {} : { authLevel: level });
    this.#adopt(moved);
    const live = await this.#written(moved.id, session.data, moved);
    // A bound session stays bound: its cookie ends with the new id, not with the session.
    this.#outcome = { set: moved };
    return live;
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
   * On the way out: the cookie as the request left it: cleared, or set to the id the request
   * moved the session to, or, for the carried id once old enough, renewed (after a write too);
   * never renewed on a failed response.
   */
  async finish(cookie: CookieSettings, renewAfter: number) {
    if (this.#registration && this.c.res.status < 400) {
      this.c.header('Secure-Session-Registration', this.#registration);
    }
    const outcome = this.#outcome;
    if (outcome && 'clear' in outcome) return clearCookie(this.c, cookie);
    const carried = this.carried;
    if (outcome && outcome.set.id !== carried?.id) return writeCookie(this.c, cookie, outcome.set, now());
    if (!carried) return;
    // A bound id moves only by the browser's refresh, and its cookie ends with the id, not with
    // the session: neither a renewal nor a write changes it.
    if (carried.bound) return;
    if (this.c.res.status < 400 && now() - carried.issuedAt >= renewAfter) {
      try {
        return writeCookie(this.c, cookie, await renewShared(this.client, carried.id), now());
      } catch (err) {
        // An id that no longer reaches a session: the cookie goes.
        if (err instanceof SessionStateError && err.code === 'session_not_found') return clearCookie(this.c, cookie);
        // Any other failure (a busy store first of all) leaves the answer as it was and the id as
        // it is: the next request renews it. A renewal never turns a success into a failure.
        console.warn(`session-state: renewal failed: ${err instanceof SessionStateError ? err.code : String(err)}`);
      }
    }
    // A write moved the expiry on: the cookie follows it.
    if (outcome) writeCookie(this.c, cookie, outcome.set, carried.issuedAt);
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
