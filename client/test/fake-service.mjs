// A stand-in for session-state behind a service binding, in memory: the routes the Hono
// middleware calls, answering as the contract (openapi.yaml) says, with a grace window and reuse
// detection on renewal, a clock the test moves, failures the test injects, and a count of calls.
import { createHash, randomUUID } from 'node:crypto';

const handleOf = (id) => createHash('sha256').update(`session-state/v1/handle\0${id}`).digest('hex').slice(0, 32);

export function fakeService({ graceMs = 30_000, ttlMs = 1_800_000, renewDelayMs = 20, binding = true } = {}) {
  let clock = Date.now();
  const sessions = new Map(); // id -> session
  const renewed = new Map(); // old id -> { successor, until }
  const calls = [];
  let failNext = null;

  const problem = (status, code, extra = {}) =>
    new Response(JSON.stringify({ type: 'about:blank', status, code, detail: code, ...extra }), {
      status,
      headers: { 'content-type': 'application/problem+json', ...(status === 503 ? { 'retry-after': '2' } : {}) },
    });
  const headersOf = (s) => ({
    'session-expires': new Date(s.expiresAt).toISOString(),
    etag: `"${s.version}"`,
    'session-authenticated-at': new Date(s.authAt).toISOString(),
    'session-auth-level': String(s.level),
  });
  const json = (status, body, headers = {}) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
  const created = (id, s) =>
    json(201, { sessionId: id, expiresAt: new Date(s.expiresAt).toISOString() }, {
      ...headersOf(s), 'session-id': id, 'session-handle': handleOf(id),
    });
  const live = (id) => {
    const s = sessions.get(id);
    if (s && s.expiresAt > clock) return [id, s];
    const moved = renewed.get(id);
    if (!moved) return [id, undefined];
    if (clock <= moved.until) return live(moved.successor);
    // Reuse: an id renewed away, presented after its grace window, ends the session.
    renewed.delete(id);
    sessions.delete(moved.successor);
    return [id, undefined];
  };
  const move = (id, s, changes = {}) => {
    const next = randomUUID();
    sessions.delete(id);
    sessions.set(next, { ...s, ...changes, version: s.version + 1, expiresAt: clock + ttlMs });
    return next;
  };

  async function serve(request) {
    const url = new URL(request.url);
    const [, route, id, rest, handle] = url.pathname.split('/').map(decodeURIComponent);
    calls.push(`${request.method} /${route}`);
    if (failNext) {
      const answer = failNext;
      failNext = null;
      return problem(...answer);
    }
    const body = request.method === 'GET' || request.method === 'DELETE' ? undefined : await request.text();
    if (route === 'create') {
      const next = randomUUID();
      const subject = request.headers.get('session-subject');
      sessions.set(next, {
        data: JSON.parse(body), version: 1, expiresAt: clock + ttlMs, authAt: clock,
        level: Number(request.headers.get('session-auth-level') ?? 1),
        subject: subject === null ? undefined : decodeURIComponent(subject),
        agent: request.headers.get('session-agent'),
      });
      return created(next, sessions.get(next));
    }
    if (route === 'subjects') {
      const mine = [...sessions].filter(([, s]) => s.subject === id && s.expiresAt > clock);
      if (request.method === 'GET') {
        const current = request.headers.get('session-id');
        return json(200, {
          sessions: mine.map(([sid]) => ({ handle: handleOf(sid), ...(current === null ? {} : { current: sid === current }) })),
        });
      }
      const ending = rest === 'sessions' && handle ? mine.filter(([sid]) => handleOf(sid) === handle) : mine;
      if (handle && ending.length === 0) return problem(404, 'session_not_found');
      for (const [sid] of ending) sessions.delete(sid);
      return json(200, { revoked: ending.length });
    }
    const [at, s] = live(id);
    if (route === 'delete') {
      if (s) sessions.delete(at);
      return new Response(null, { status: 204 });
    }
    if (!s) return problem(404, 'session_not_found');
    const ifMatch = request.headers.get('if-match');
    if (ifMatch !== null && ifMatch !== `"${s.version}"`) return problem(412, 'precondition_failed');
    switch (route) {
      case 'get':
        return json(200, s.data, headersOf(s));
      case 'update':
        Object.assign(s, { data: JSON.parse(body), version: s.version + 1, expiresAt: clock + ttlMs });
        return json(200, s.data, headersOf(s));
      case 'add':
        Object.assign(s, { data: { ...s.data, ...JSON.parse(body) }, version: s.version + 1, expiresAt: clock + ttlMs });
        return json(200, s.data, headersOf(s));
      case 'renew': {
        // As a real renewal takes a round trip, so that parallel requests overlap with it.
        await new Promise((r) => setTimeout(r, renewDelayMs));
        const earlier = renewed.get(id);
        if (earlier) return created(earlier.successor, sessions.get(earlier.successor));
        const next = move(at, s);
        renewed.set(id, { successor: next, until: clock + graceMs });
        return created(next, sessions.get(next));
      }
      case 'bind':
        // A registration challenge only: registration and refresh run against the real service
        // (tests/e2e/dbsc.test.mjs), whose proofs a stand-in could only pretend to check.
        if (rest === 'challenge' && binding) return json(200, { challenge: `c-${at}` });
        return problem(404, 'not_found');
      case 'reauth': {
        const level = Number(request.headers.get('session-auth-level') ?? 1);
        const next = move(at, s, { authAt: clock, level });
        return created(next, sessions.get(next));
      }
      default:
        return problem(404, 'not_found');
    }
  }

  return {
    binding: { fetch: (input, init) => serve(new Request(input, init)) },
    sessions,
    calls,
    handleOf,
    /** Moves the service's clock on by `ms`. */
    advance(ms) { clock += ms; },
    /** The next call answers this problem instead: `[status, code]`. */
    failNext(status, code) { failNext = [status, code]; },
    count: (call) => calls.filter((c) => c === call).length,
  };
}
