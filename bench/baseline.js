// The floor of this runtime: a plain JavaScript Worker doing the same KV operations per route as
// session-state, metadata included (getWithMetadata on reads, metadata on writes), with no
// validation, no routing library and no logging. create = 1 put; get = 1 getWithMetadata;
// add = 1 getWithMetadata + 1 put; delete = 1 delete; health touches no KV.
const TTL = 1800;

function metadata(previous) {
  const now = Date.now();
  return JSON.stringify({
    createdAt: previous?.createdAt ?? now, updatedAt: now, expiresAt: now + TTL * 1000,
    version: (previous?.version ?? 0) + 1,
  });
}

export default {
  async fetch(request, env) {
    const [, route, id] = new URL(request.url).pathname.split('/');
    const kv = env.sessionstore;
    switch (route) {
      case 'create': {
        const sessionId = crypto.randomUUID();
        await kv.put(sessionId, await request.text(), { expirationTtl: TTL, metadata: metadata() });
        return new Response(sessionId, { status: 201 });
      }
      case 'get': {
        const { value, metadata: meta } = await kv.getWithMetadata(id, 'stream');
        if (value === null) return new Response('not found', { status: 404 });
        const { version } = JSON.parse(meta);
        return new Response(value, { headers: { 'content-type': 'application/json', etag: `"${version}"` } });
      }
      case 'add': {
        const { value, metadata: meta } = await kv.getWithMetadata(id, 'text');
        const merged = JSON.stringify({ ...JSON.parse(value), ...(await request.json()) });
        await kv.put(id, merged, { expirationTtl: TTL, metadata: metadata(JSON.parse(meta)) });
        return new Response(merged, { headers: { 'content-type': 'application/json' } });
      }
      case 'delete':
        await kv.delete(id);
        return new Response(null, { status: 204 });
      case 'health':
        return new Response('{"status":"ok"}');
      default:
        return new Response('not found', { status: 404 });
    }
  },
};
