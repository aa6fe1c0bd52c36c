// A small Hono app whose sessions live in session-state, through the middleware of
// `@session-state/client/hono` (resolved to the client's source by this folder's tsconfig.json).
// A demo: login takes a username and no password, and step-up takes nothing but a click.
//
// Routes (kept stable for tests/e2e/hono.test.mjs and tests/browser/):
//   GET  /                          the page: a login form, or the user, their devices, log-out buttons
//   POST /login                     {"username": "…"} as JSON, or the same as a form
//   GET  /me                        the session's data, 401 without a live session
//   POST /reauth                    step-up: an authentication at level 2, now
//   GET  /sensitive                 needs an authentication at level 2 in the last 300 s (403 otherwise)
//   POST /devices/:handle/sign-out  ends one of the user's sessions ("sign out that device")
//   POST /logout                    ends this session and clears the cookie
//   POST /logout-everywhere         ends every session of the user
//   POST /.session-state/dbsc/register, /.session-state/dbsc/refresh
//                                   the middleware's device-bound session endpoints (W3C DBSC): a
//                                   browser with DBSC binds its login to a key it keeps, and its
//                                   cookie then holds a short-lived id only its signed refresh
//                                   replaces (docs/dbsc.md)
import { Hono, type Context } from 'hono';
import { html } from 'hono/html';
import type { ServiceBinding } from '@session-state/client';
import { requireAuth, requireSession, sessionState, type SessionVariables } from '@session-state/client/hono';

type Data = { sub?: string; username: string; loginAt: string };
type App = {
  Bindings: { sessionService: ServiceBinding; RENEW_AFTER_SECONDS?: string };
  Variables: SessionVariables<Data>;
};

const app = new Hono<App>();

app.use(
  sessionState({
    service: (c) => c.env.sessionService,
    renewAfter: (c) => Number(c.env.RENEW_AFTER_SECONDS ?? 900),
    dbsc: true,
    device: (c) => {
      const agent = c.req.header('user-agent')?.slice(0, 512);
      const label = agent ? labelOf(agent) : undefined;
      return { ...(agent ? { agent } : {}), ...(label ? { label } : {}) };
    },
  }),
);

/** Whether the request came from a form (then the answer is a redirect to the page). */
const fromForm = (c: Context) => !(c.req.header('content-type') ?? '').includes('application/json');
const done = (c: Context, body: object) => (fromForm(c) ? c.redirect('/', 303) : c.json(body));

app.get('/', async (c) => {
  const session = await c.var.session.get();
  if (!session) {
    return c.html(html`<!doctype html>
      <title>Sign in</title>
      <h1>Sign in</h1>
      <form method="post" action="/login">
        <label>Username <input name="username" autocomplete="username" required /></label>
        <button type="submit">Sign in</button>
      </form>`);
  }
  const devices = await c.var.session.devices();
  return c.html(html`<!doctype html>
    <title>${session.data.username}</title>
    <h1>Signed in as <span id="user">${session.data.username}</span></h1>
    <h2>Your devices</h2>
    <ul id="devices">
      ${devices.map(
        (d) => html`<li data-handle="${d.handle}" data-current="${d.current ? 'yes' : 'no'}">
          ${d.label ?? 'Unknown device'}${d.current ? ' (this device)' : ''}, last seen ${d.lastSeenAt}
          <form method="post" action="/devices/${d.handle}/sign-out"><button type="submit">Sign out</button></form>
        </li>`,
      )}
    </ul>
    <form method="post" action="/logout"><button id="logout" type="submit">Log out</button></form>
    <form method="post" action="/logout-everywhere"><button id="logout-everywhere" type="submit">Log out everywhere</button></form>`);
});

app.post('/login', async (c) => {
  const body = fromForm(c) ? await c.req.parseBody() : await c.req.json<Record<string, unknown>>();
  const username = typeof body.username === 'string' ? body.username.trim() : '';
  if (!username || username.length > 64) return c.json({ code: 'invalid_username' }, 400);
  const session = await c.var.session.login(username, { username, loginAt: new Date().toISOString() });
  return done(c, { username, expiresAt: session.expiresAt });
});

app.get('/me', requireSession(), async (c) => {
  const session = await c.var.session.get();
  return c.json(session?.data ?? null);
});

app.post('/reauth', requireSession(), async (c) => {
  const session = await c.var.session.reauth(2);
  return done(c, { authenticatedAt: session.authenticatedAt, authLevel: session.authLevel });
});

app.get('/sensitive', requireAuth({ maxAge: 300, minLevel: 2 }), (c) => c.json({ secret: 'the launch codes' }));

app.post('/devices/:handle/sign-out', requireSession(), async (c) => {
  const ended = await c.var.session.signOut(c.req.param('handle'));
  return done(c, { ended });
});

app.post('/logout', async (c) => {
  await c.var.session.logout();
  return done(c, { ended: true });
});

app.post('/logout-everywhere', requireSession(), async (c) => {
  const ended = await c.var.session.logoutEverywhere();
  return done(c, { ended });
});

/** "Chrome on Linux", from a User-Agent, for "your devices"; nothing when unsure. */
function labelOf(agent: string): string | undefined {
  const browser = ['Edg', 'Firefox', 'Chrome', 'Safari'].find((name) => agent.includes(`${name}/`));
  const system = ['Android', 'iPhone', 'Windows', 'Mac OS X', 'Linux'].find((name) => agent.includes(name));
  if (!browser || !system) return undefined;
  return `${browser === 'Edg' ? 'Edge' : browser} on ${system === 'Mac OS X' ? 'macOS' : system}`;
}

export default app;
