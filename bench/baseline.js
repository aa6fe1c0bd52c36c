// The floor of this runtime: the same KV operations per route as session-state, with no
// validation, no routing library and no metadata. create = 1 put; get = 1 get;
// add = 1 get + 1 put; delete = 1 delete.
export default {
  async fetch(request, env) {
    const [, route, id] = new URL(request.url).pathname.split('/');
    const kv = env.sessionstore;
    switch (route) {
      case 'create': {
        const sessionId = crypto.randomUUID();
        await kv.put(sessionId, await request.text());
        return new Response(sessionId, { status: 201 });
      }
      case 'get': {
        const data = await kv.get(id);
        return data === null
          ? new Response('not found', { status: 404 })
          : new Response(data, { headers: { 'content-type': 'application/json' } });
      }
      case 'add': {
        const merged = { ...JSON.parse(await kv.get(id)), ...(await request.json()) };
        const text = JSON.stringify(merged);
        await kv.put(id, text);
        return new Response(text, { headers: { 'content-type': 'application/json' } });
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
