/**
 * A typed client for session-state.
 *
 * From a Worker, through its service binding:
 *
 *     const sessions = createSessionClient(env.sessionService);
 *     const { id } = await sessions.create({ username: 'ada' }, { subject: 'ada' });
 *     const session = await sessions.get(id); // { id, version, etag, expiresAt, data } or null
 *
 * From Node (or anything with `fetch`), with a URL and the `API_TOKEN`, if set:
 *
 *     const sessions = createSessionClient({ baseUrl: 'https://sessions.example.com', token });
 *
 * A thin layer over the HTTP API: one request per call, nothing cached, nothing retried. Every
 * failure is a {@link SessionStateError} carrying the problem's `status`, `code` and `detail`; the
 * ones worth retrying say so (`retryable`, and `retryAfter` in seconds). The types of bodies and
 * problem codes are generated from the API's OpenAPI document (`src/openapi.ts`).
 */
import type { components, paths } from './openapi.js';

type Schemas = components['schemas'];

/** A session id: a lowercase UUID v4, or a token (43 characters of base64url). */
export type SessionId = Schemas['SessionId'];
/** Session data: any JSON object. */
export type SessionData = Schemas['SessionData'];
/** The machine-readable `code` of every problem the API answers. */
export type ProblemCode = Schemas['Problem']['code'];
export type Problem = Schemas['Problem'];
/** How a subject's list names a session: not a credential, and the id cannot be computed from it. */
export type SessionHandle = Schemas['SessionHandle'];
/** A live session of a subject, as `subjects.list` gives it: by handle, never by id. */
export type SubjectSession =
  paths['/subjects/{subject}/sessions']['get']['responses'][200]['content']['application/json']['sessions'][number];
type NewSession = Schemas['NewSession'];
type CacheStored = paths['/cache/{key}']['put']['responses'][200]['content']['application/json'];
type Revoked = paths['/subjects/{subject}/sessions']['delete']['responses'][200]['content']['application/json'];

/** What a Worker's service binding offers: `fetch`. */
export interface ServiceBinding {
  fetch(input: Request | string, init?: RequestInit): Promise<Response>;
}

export interface ClientOptions {
  /** Where the service answers, e.g. `https://sessions.example.com` (no trailing path). */
  baseUrl: string;
  /** The service's `API_TOKEN`, sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof fetch;
}

/** A new session (from `create`, `rotate`, `renew` or `reauth`): its lifecycle, and its handle in the subject's list. */
export interface NewSessionMeta extends SessionMeta {
  handle: SessionHandle;
  /** For a session bound to a device key (DBSC): when this id stops working (RFC 3339). */
  idExpiresAt?: string;
}

/** What the API reports of a session's lifecycle. */
export interface SessionMeta {
  id: SessionId;
  /** 1 at creation, +1 per write; 0 for a session the old worker wrote and nobody has since. */
  version: number;
  /** The version as an entity tag (`"3"`), for `ifMatch`. */
  etag: string;
  /** When the session expires unless renewed (RFC 3339). */
  expiresAt: string;
  /**
   * The session's last authentication: at `create`, or the last `reauth` (RFC 3339). A session of
   * the old worker reads `1970-01-01T00:00:00.000Z`: unknown, and never fresh.
   */
  authenticatedAt: string;
  /** The level of that authentication: 1 one factor, 2 two factors, 3 hardware-bound. */
  authLevel: AuthLevel;
}

/** How the user proved who they are: 1 one factor, 2 two factors, 3 a hardware-bound authenticator. */
export type AuthLevel = 1 | 2 | 3;

/** A session just bound or refreshed: its new id, its binding identifier and when the id stops working. */
export interface BoundSessionMeta extends NewSessionMeta {
  /** The binding identifier: the browser's DBSC `session_identifier`. */
  binding: SessionId;
  alg: 'ES256' | 'RS256';
  /** When this id stops working (RFC 3339): only a refresh with the device's proof moves the session on. */
  idExpiresAt: string;
}

/**
 * What a call demands of the session's last authentication. When the session falls short the
 * call throws a {@link SessionStateError} with code `reauthentication_required` (and what was
 * found in `authentication`), and nothing is changed or renewed: authenticate the user again,
 * then `reauth`.
 */
export interface Demand {
  /** At most this many seconds old. */
  maxAuthAge?: number;
  /** At least this level. */
  minAuthLevel?: AuthLevel;
}

export interface Session<T extends SessionData = SessionData> extends SessionMeta {
  data: T;
}

export interface CreateOptions {
  /** This session's own idle timeout, in seconds. */
  ttl?: number;
  /** Who the session belongs to (listed and revoked under it); fixed for the session's life. */
  subject?: string;
  /**
   * What the user sees in "your devices" ("Firefox on Linux"), 1–128 bytes. Device info
   * (`label`, `agent`, `ip`) needs a `subject`, is kept sealed, and is listed with the session.
   */
  label?: string;
  /** The end user's User-Agent, as your Worker saw it, 1–512 bytes. */
  agent?: string;
  /** The end user's address (`CF-Connecting-IP`), IPv4 or IPv6. */
  ip?: string;
  /** How the user just authenticated (1 when not given). */
  authLevel?: AuthLevel;
}

export interface ReauthOptions {
  /** How the user just authenticated again (1 when not given: the level this authentication proved). */
  authLevel?: AuthLevel;
}

export interface ListOptions {
  /** The caller's own session: its entry is marked `current: true`, the others `false`. */
  current?: SessionId;
}

export interface RevokeOptions {
  /** Keep this session (the caller's own). */
  except?: SessionId;
  /** End only the sessions created before this time (a `Date`, or RFC 3339 text). */
  before?: Date | string;
}

export interface WriteOptions extends Demand {
  /** Write only if the session is at this version (a number, or an entity tag); else 412. */
  ifMatch?: number | string;
}

export interface AddOptions extends WriteOptions {
  /** RFC 7396 JSON Merge Patch (nested objects merge, `null` removes) instead of the shallow merge. */
  mergePatch?: boolean;
}

/** A problem the API answered (or a response it should not have given). */
export class SessionStateError extends Error {
  override readonly name = 'SessionStateError';
  readonly status: number;
  readonly code: ProblemCode | 'unexpected_response';
  readonly detail: string;
  /** Seconds to wait before trying again, when the API said so. */
  readonly retryAfter: number | undefined;
  /** For `reauthentication_required`: the session's last authentication, as found. */
  readonly authentication: { authenticatedAt: string; authAge: number; authLevel: AuthLevel } | undefined;

  constructor(
    status: number,
    code: ProblemCode | 'unexpected_response',
    detail: string,
    retryAfter?: number,
    authentication?: { authenticatedAt: string; authAge: number; authLevel: AuthLevel },
  ) {
    super(`${status} ${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.authentication = authentication;
  }

  /** Whether the same call may succeed later: the store was busy or unavailable. */
  get retryable(): boolean {
    return this.code === 'store_busy' || this.code === 'store_unavailable';
  }
}

export interface SessionClient {
  /** Stores `data` as a new session. */
  create<T extends SessionData>(data: T, options?: CreateOptions): Promise<NewSessionMeta>;
  /** The session, or `null` when there is no live session with this id. */
  get<T extends SessionData = SessionData>(id: SessionId, demand?: Demand): Promise<Session<T> | null>;
  /** Replaces the session's data. */
  update<T extends SessionData>(id: SessionId, data: T, options?: WriteOptions): Promise<Session<T>>;
  /** Merges `patch` into the session's data; returns the merged session. */
  add<T extends SessionData = SessionData>(id: SessionId, patch: SessionData, options?: AddOptions): Promise<Session<T>>;
  /** Deletes the session (a missing one is already deleted, unless `ifMatch` asks for it). */
  delete(id: SessionId, options?: WriteOptions): Promise<void>;
  /** Renews the session's expiry. */
  touch(id: SessionId, demand?: Demand): Promise<SessionMeta>;
  /** Moves the session to a new id (after login or a privilege change); the old id is gone. */
  rotate(id: SessionId, demand?: Demand): Promise<NewSessionMeta>;
  /**
   * Records that the user just authenticated again (at `authLevel`, 1 by default), and moves the
   * session to a new id as `rotate` does: what a `reauthentication_required` asks for.
   */
  reauth(id: SessionId, options?: ReauthOptions): Promise<NewSessionMeta>;
  /**
   * A new id for the session, same privilege (rolling ids). The old id keeps reaching the
   * session for the server's grace window (a second `renew` of it within the window returns the
   * same new id); presented after that, it is reuse and ends the session.
   */
  renew(id: SessionId, demand?: Demand): Promise<NewSessionMeta>;
  /** Device binding (W3C DBSC): what an app's registration and refresh endpoints call. */
  binding: {
    /** A challenge for binding the session `id` to a device key (for `Secure-Session-Registration`). */
    registrationChallenge(id: SessionId): Promise<string>;
    /** Binds the session to the key of the browser's registration `proof`; the session moves to a new id. */
    bind(id: SessionId, proof: string): Promise<BoundSessionMeta>;
    /** A challenge for refreshing the session bound under `binding` (for `Secure-Session-Challenge`). */
    refreshChallenge(binding: SessionId): Promise<string>;
    /** Moves the session bound under `binding` to a new id, given the browser's refresh `proof`. */
    refresh(binding: SessionId, proof: string): Promise<BoundSessionMeta>;
  };
  cache: {
    /** The cached value, or `null`. */
    get<T = unknown>(key: string): Promise<T | null>;
    put(key: string, data: unknown, options?: { ttl?: number }): Promise<CacheStored>;
    delete(key: string): Promise<void>;
  };
  subjects: {
    /** The subject's live sessions, newest first, with their device info and last use. */
    list(subject: string, options?: ListOptions): Promise<SubjectSession[]>;
    /** Ends the subject's sessions (all but `except`, only those created `before`); returns how many it ended. */
    revoke(subject: string, options?: RevokeOptions): Promise<number>;
    /** Ends the subject's session listed as `handle`; `false` when none is live under it. */
    revokeOne(subject: string, handle: SessionHandle): Promise<boolean>;
    /** Ends every session of the subject created before `time` (after a password change); returns how many. */
    revokeBefore(subject: string, time: Date | string, options?: { except?: SessionId }): Promise<number>;
  };
}

const JSON_BODY = { 'content-type': 'application/json' };

/** Every client `createSessionClient` made: how a client is told from a binding (see below). */
const clients = new WeakSet<object>();

/**
 * Whether `value` is a client made by {@link createSessionClient}. A service binding is an RPC stub
 * that claims to have every property, so no property test can tell the two apart.
 */
export function isSessionClient(value: unknown): value is SessionClient {
  return typeof value === 'object' && value !== null && clients.has(value);
}

/** A client for the service behind `target`: a service binding, or a URL. */
export function createSessionClient(target: ServiceBinding | ClientOptions): SessionClient {
  const client = makeClient(target);
  clients.add(client);
  return client;
}

function makeClient(target: ServiceBinding | ClientOptions): SessionClient {
  const send = sender(target);
  const sessionPath = (route: string, id: SessionId) => `/${route}/${encodeURIComponent(id)}`;
  const demanding = (demand: Demand | undefined, headers: Record<string, string> = {}) => {
    const demanded = { ...headers };
    if (demand?.maxAuthAge !== undefined) demanded['session-max-auth-age'] = String(demand.maxAuthAge);
    if (demand?.minAuthLevel !== undefined) demanded['session-min-auth-level'] = String(demand.minAuthLevel);
    return demanded;
  };
  const writeHeaders = (options: WriteOptions | undefined, headers: Record<string, string> = {}) => {
    const demanded = demanding(options, headers);
    return options?.ifMatch === undefined ? demanded : { ...demanded, 'if-match': entityTag(options.ifMatch) };
  };

  return {
    async create(data, options = {}) {
      const query = options.ttl === undefined ? '' : `?ttl=${encodeURIComponent(options.ttl)}`;
      const headers: Record<string, string> = { ...JSON_BODY, accept: 'application/json' };
      if (options.subject !== undefined) headers['session-subject'] = encodeURIComponent(options.subject);
      if (options.label !== undefined) headers['session-label'] = encodeURIComponent(options.label);
      if (options.agent !== undefined) headers['session-agent'] = encodeURIComponent(options.agent);
      if (options.ip !== undefined) headers['session-ip'] = encodeURIComponent(options.ip);
      if (options.authLevel !== undefined) headers['session-auth-level'] = String(options.authLevel);
      const response = await send('POST', `/create${query}`, headers, JSON.stringify(data));
      const body = await success<NewSession>(response);
      return newMeta(response, body.sessionId);
    },

    async get<T extends SessionData = SessionData>(id: SessionId, demand?: Demand) {
      const response = await send('GET', sessionPath('get', id), demanding(demand));
      if (await missing(response, 'session_not_found')) return null;
      const data = await success<T>(response);
      return { ...meta(response, id), data };
    },

    async update(id, data, options) {
      const response = await send('PUT', sessionPath('update', id), writeHeaders(options, JSON_BODY), JSON.stringify(data));
      return { ...meta(response, id), data: await success<typeof data>(response) };
    },

    async add<T extends SessionData = SessionData>(id: SessionId, patch: SessionData, options?: AddOptions) {
      const type = options?.mergePatch ? 'application/merge-patch+json' : 'application/json';
      const response = await send('PATCH', sessionPath('add', id), writeHeaders(options, { 'content-type': type }), JSON.stringify(patch));
      return { ...meta(response, id), data: await success<T>(response) };
    },

    async delete(id, options) {
      await success<void>(await send('DELETE', sessionPath('delete', id), writeHeaders(options)));
    },

    async touch(id, demand) {
      const response = await send('POST', sessionPath('touch', id), demanding(demand));
      await success<void>(response);
      return meta(response, id);
    },

    async rotate(id, demand) {
      const response = await send('POST', sessionPath('rotate', id), demanding(demand, { accept: 'application/json' }));
      const body = await success<NewSession>(response);
      return newMeta(response, body.sessionId);
    },

    async reauth(id, options = {}) {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (options.authLevel !== undefined) headers['session-auth-level'] = String(options.authLevel);
      const response = await send('POST', sessionPath('reauth', id), headers);
      const body = await success<NewSession>(response);
      return newMeta(response, body.sessionId);
    },

    async renew(id, demand) {
      const response = await send('POST', sessionPath('renew', id), demanding(demand, { accept: 'application/json' }));
      const body = await success<NewSession>(response);
      return newMeta(response, body.sessionId);
    },

    binding: {
      async registrationChallenge(id) {
        const response = await send('POST', `${sessionPath('bind', id)}/challenge`);
        return (await success<{ challenge: string }>(response)).challenge;
      },
      async bind(id, proof) {
        const response = await send('POST', sessionPath('bind', id), { 'secure-session-response': proof });
        return boundMeta(response, await success<Schemas['Bound']>(response));
      },
      async refreshChallenge(binding) {
        const response = await send('POST', `${sessionPath('binding', binding)}/challenge`);
        return (await success<{ challenge: string }>(response)).challenge;
      },
      async refresh(binding, proof) {
        const response = await send('POST', `${sessionPath('binding', binding)}/refresh`, { 'secure-session-response': proof });
        return boundMeta(response, await success<Schemas['Bound']>(response));
      },
    },

    cache: {
      async get<T = unknown>(key: string) {
        const response = await send('GET', `/cache/${encodeURIComponent(key)}`);
        if (await missing(response, 'cache_entry_not_found')) return null;
        return success<T>(response);
      },
      async put(key, data, options = {}) {
        const body = JSON.stringify(options.ttl === undefined ? { data } : { data, ttl: options.ttl });
        return success<CacheStored>(await send('PUT', `/cache/${encodeURIComponent(key)}`, JSON_BODY, body));
      },
      async delete(key) {
        await success<unknown>(await send('DELETE', `/cache/${encodeURIComponent(key)}`));
      },
    },

    subjects: {
      async list(subject, options = {}) {
        const headers: Record<string, string> = options.current === undefined ? {} : { 'session-id': options.current };
        const response = await send('GET', `/subjects/${encodeURIComponent(subject)}/sessions`, headers);
        return (await success<{ sessions: SubjectSession[] }>(response)).sessions;
      },
      async revoke(subject, options = {}) {
        const query = new URLSearchParams();
        if (options.except !== undefined) query.set('except', options.except);
        if (options.before !== undefined) {
          query.set('before', typeof options.before === 'string' ? options.before : options.before.toISOString());
        }
        const search = query.size === 0 ? '' : `?${query}`;
        const response = await send('DELETE', `/subjects/${encodeURIComponent(subject)}/sessions${search}`);
        return (await success<Revoked>(response)).revoked;
      },
      async revokeBefore(subject, time, options = {}) {
        return this.revoke(subject, { ...options, before: time });
      },
      async revokeOne(subject, handle) {
        const path = `/subjects/${encodeURIComponent(subject)}/sessions/${encodeURIComponent(handle)}`;
        const response = await send('DELETE', path);
        if (await missing(response, 'session_not_found')) return false;
        return (await success<Revoked>(response)).revoked === 1;
      },
    },
  };
}

type Send = (method: string, path: string, headers?: Record<string, string>, body?: string) => Promise<Response>;

function sender(target: ServiceBinding | ClientOptions): Send {
  // A binding is an RPC stub that claims to have every property, so `'baseUrl' in` cannot tell
  // the two apart; the type of the value can.
  if (isOptions(target)) {
    const base = target.baseUrl.replace(/\/+$/, '');
    const fetcher = target.fetch ?? ((input: string, init?: RequestInit) => fetch(input, init));
    const auth: Record<string, string> = target.token === undefined ? {} : { authorization: `Bearer ${target.token}` };
    return (method, path, headers = {}, body) => fetcher(`${base}${path}`, requestInit(method, { ...auth, ...headers }, body));
  }
  // A service binding routes by binding, not by host: any host will do.
  return (method, path, headers = {}, body) => target.fetch(`https://session-state${path}`, requestInit(method, headers, body));
}

function isOptions(target: ServiceBinding | ClientOptions): target is ClientOptions {
  return typeof (target as Partial<ClientOptions>).baseUrl === 'string';
}

function requestInit(method: string, headers: Record<string, string>, body: string | undefined): RequestInit {
  return body === undefined ? { method, headers } : { method, headers, body };
}

/** `"3"` for version 3; a tag given as a string is sent as it is (`*`, `"3"`). */
function entityTag(ifMatch: number | string): string {
  return typeof ifMatch === 'number' ? `"${ifMatch}"` : ifMatch;
}

function meta(response: Response, id: SessionId): SessionMeta {
  const etag = response.headers.get('etag') ?? '';
  return {
    id,
    version: Number(/^"(\d+)"$/.exec(etag)?.[1] ?? Number.NaN),
    etag,
    expiresAt: response.headers.get('session-expires') ?? '',
    authenticatedAt: response.headers.get('session-authenticated-at') ?? '',
    authLevel: Number(response.headers.get('session-auth-level') ?? Number.NaN) as AuthLevel,
  };
}

function newMeta(response: Response, id: SessionId): NewSessionMeta {
  const created: NewSessionMeta = { ...meta(response, id), handle: response.headers.get('session-handle') ?? '' };
  const idExpiresAt = response.headers.get('session-id-expires');
  return idExpiresAt === null ? created : { ...created, idExpiresAt };
}

function boundMeta(response: Response, body: Schemas['Bound']): BoundSessionMeta {
  return { ...newMeta(response, body.sessionId), binding: body.binding, alg: body.alg, idExpiresAt: body.idExpiresAt };
}

/** Whether the response is the 404 problem `code` (a miss the caller gets as `null`). */
async function missing(response: Response, code: ProblemCode): Promise<boolean> {
  if (response.status !== 404) return false;
  const problem = await problemOf(response.clone());
  return problem?.code === code;
}

/** The body of a successful response, or the problem thrown as a {@link SessionStateError}. */
async function success<T>(response: Response): Promise<T> {
  if (response.ok) {
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }
  const problem = await problemOf(response);
  const retryAfter = response.headers.get('retry-after');
  throw new SessionStateError(
    response.status,
    problem?.code ?? 'unexpected_response',
    problem?.detail ?? `The service answered ${response.status} without a problem document.`,
    retryAfter === null ? undefined : Number(retryAfter),
    problem?.code === 'reauthentication_required'
      ? {
          authenticatedAt: problem.authenticatedAt ?? '',
          authAge: problem.authAge ?? Number.NaN,
          authLevel: (problem.authLevel ?? Number.NaN) as AuthLevel,
        }
      : undefined,
  );
}

async function problemOf(response: Response): Promise<Problem | null> {
  if (!(response.headers.get('content-type') ?? '').startsWith('application/problem+json')) return null;
  try {
    return (await response.json()) as Problem;
  } catch {
    return null;
  }
}
