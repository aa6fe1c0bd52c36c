/**
 * Device-bound sessions (W3C DBSC) in the middleware: the registration header at login, the
 * browser's registration and refresh endpoints, and its `Secure-Session-Skipped` reports. The
 * proofs are checked, and the challenges minted, by session-state (`/bind`, `/binding`).
 */
import type { Context } from 'hono';
import { type BoundSessionMeta, type SessionClient, type SessionId, SessionStateError } from '../index.js';
import { type Carried, type CookieSettings, clearCookie, retryable, unavailable, writeCookie } from './http.js';
import type { DbscOptions } from './options.js';

export interface DbscSettings {
  registrationPath: string;
  refreshPath: string;
  algorithms: ('ES256' | 'RS256')[];
  onSkipped: NonNullable<DbscOptions['onSkipped']>;
}

export function dbscSettings(options: boolean | DbscOptions | undefined): DbscSettings | null {
  if (!options) return null;
  const given = options === true ? {} : options;
  return {
    registrationPath: given.registrationPath ?? '/.session-state/dbsc/register',
    refreshPath: given.refreshPath ?? '/.session-state/dbsc/refresh',
    algorithms: given.algorithms ?? ['ES256', 'RS256'],
    onSkipped: given.onSkipped ?? ((skipped) => {
      console.warn(`session-state: the browser skipped a DBSC refresh: ${skipped.map((s) => s.reason).join(', ')}`);
    }),
  };
}

/** `Secure-Session-Registration: (ES256 RS256);path="…";challenge="…"`. */
export function registrationHeader(dbsc: DbscSettings, challenge: string): string {
  return `(${dbsc.algorithms.join(' ')});path=${sfString(dbsc.registrationPath)};challenge=${sfString(challenge)}`;
}

/** Serves a DBSC endpoint when the request is for one; `undefined` otherwise. */
export async function serveDbsc(
  c: Context,
  dbsc: DbscSettings,
  client: SessionClient,
  cookie: CookieSettings,
  carried: Carried | null,
): Promise<Response | undefined> {
  const skipped = c.req.header('secure-session-skipped');
  if (skipped) dbsc.onSkipped(parseSkipped(skipped), c);
  if (c.req.method !== 'POST') return undefined;
  const path = new URL(c.req.url).pathname;
  if (path === dbsc.registrationPath) return register(c, dbsc, client, cookie, carried);
  if (path === dbsc.refreshPath) return refresh(c, dbsc, client, cookie);
  return undefined;
}

/** The registration: the proof bound to the id the cookie carries; a new, bound id set. */
async function register(c: Context, dbsc: DbscSettings, client: SessionClient, cookie: CookieSettings, carried: Carried | null) {
  const proof = c.req.header('secure-session-response');
  if (!carried || carried.bound) return refused(c, 400, 'no_session', 'The request carries no unbound session.');
  if (!proof) return refused(c, 400, 'no_proof', 'The request carries no Secure-Session-Response.');
  try {
    return answerBound(c, dbsc, cookie, await client.binding.bind(carried.id, proof));
  } catch (err) {
    return failed(c, err);
  }
}

/**
 * The refresh: without a proof, `403` and a challenge (the browser signs it and comes back); with
 * one, a new bound id. A challenge gone stale in between gets a fresh one; any other refusal
 * is a `401`, which ends the browser's session: its cookie is gone, and with it the login.
 */
async function refresh(c: Context, dbsc: DbscSettings, client: SessionClient, cookie: CookieSettings) {
  const binding = sfStringValue(c.req.header('sec-secure-session-id'));
  if (!binding) return refused(c, 400, 'no_binding', 'The request names no session (Sec-Secure-Session-Id).');
  const proof = c.req.header('secure-session-response');
  try {
    if (!proof) return await challenged(c, client, binding);
    return answerBound(c, dbsc, cookie, await client.binding.refresh(binding, proof));
  } catch (err) {
    if (err instanceof SessionStateError && err.code === 'challenge_refused') {
      try {
        return await challenged(c, client, binding);
      } catch (again) {
        return failed(c, again, cookie);
      }
    }
    return failed(c, err, cookie);
  }
}

async function challenged(c: Context, client: SessionClient, binding: SessionId) {
  const challenge = await client.binding.refreshChallenge(binding);
  c.header('Secure-Session-Challenge', `${sfString(challenge)};id=${sfString(binding)}`);
  c.header('Cache-Control', 'no-store');
  return c.body(null, 403);
}

/** The session instructions, and the bound cookie they name. */
function answerBound(c: Context, dbsc: DbscSettings, cookie: CookieSettings, bound: BoundSessionMeta) {
  writeCookie(c, cookie, bound, Math.floor(Date.now() / 1000));
  const attributes = [
    'Path=/',
    ...(cookie.secure ? ['Secure'] : []),
    'HttpOnly',
    `SameSite=${cookie.sameSite}`,
  ].join('; ');
  return c.json({
    session_identifier: bound.binding,
    refresh_url: dbsc.refreshPath,
    scope: { include_site: false },
    credentials: [{ type: 'cookie', name: cookie.name, attributes }],
  });
}

/** A refusal: `4xx` and no bound cookie (a retryable problem of the service: `503`, kept). */
function failed(c: Context, err: unknown, cookie?: CookieSettings) {
  if (retryable(err)) {
    unavailable(c, err);
    return c.res;
  }
  if (!(err instanceof SessionStateError)) throw err;
  if (cookie) clearCookie(c, cookie);
  const status = err.status === 409 ? 409 : err.status === 404 ? 401 : err.status === 400 ? 400 : 403;
  // Never 403 from the refresh endpoint here: to the browser that asks for a new proof.
  return refused(c, cookie && status === 403 ? 401 : status, err.code, err.message);
}

function refused(c: Context, status: 400 | 401 | 403 | 409, code: string, detail: string) {
  c.header('Cache-Control', 'no-store');
  return c.json({ code, detail, continue: false }, status);
}

/** An sf-string (RFC 9651): quoted, with `"` and `\` escaped. */
function sfString(text: string): string {
  return `"${text.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;
}

/** The value of a header holding one sf-string (parameters ignored), or `null`. */
function sfStringValue(header: string | undefined): string | null {
  const match = /^\s*"((?:[^"\\]|\\.)*)"/.exec(header ?? '');
  return match ? match[1]!.replace(/\\(.)/g, '$1') : null;
}

/** `Secure-Session-Skipped: unreachable;session_identifier="123", quota_exceeded;…`. */
export function parseSkipped(header: string): { reason: string; sessionIdentifier?: string }[] {
  return header.split(',').flatMap((item) => {
    const [reason, ...params] = item.trim().split(';');
    if (!reason) return [];
    const id = params.map((p) => p.trim()).find((p) => p.startsWith('session_identifier='));
    const sessionIdentifier = id === undefined ? null : sfStringValue(id.slice('session_identifier='.length));
    return [sessionIdentifier === null ? { reason } : { reason, sessionIdentifier }];
  });
}
