// Imports the installed client and drives it against a fetcher that answers like the service.
import { createSessionClient, SessionStateError } from '@session-state/client';

const ID = '3b241101-e2bb-4255-8caf-4136c566a962';
const fetcher = {
  async fetch(input, init) {
    const url = new URL(input instanceof Request ? input.url : input);
    if (url.pathname === '/create') {
      return new Response(JSON.stringify({ sessionId: ID, expiresAt: '2026-12-02T00:30:00.000Z' }), {
        status: 201, headers: { 'content-type': 'application/json', 'session-id': ID, etag: '"1"' },
      });
    }
    const problem = { type: 'urn:session-state:problem:session_not_found', title: 'Not Found', status: 404, detail: 'x', code: 'session_not_found' };
    return new Response(JSON.stringify(problem), { status: 404, headers: { 'content-type': 'application/problem+json' } });
  },
};
const sessions = createSessionClient(fetcher);
const { id } = await sessions.create({ user: 'ada' });
try {
  await sessions.update(id, { v: 2 });
} catch (err) {
  if (!(err instanceof SessionStateError)) throw err;
  console.log(`created ${id}, then ${err.code}`);
}
