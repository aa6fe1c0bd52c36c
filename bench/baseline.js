// The floor of this runtime: a plain JavaScript Worker doing the same KV operations and the same
// cryptography per route as session-state, with no validation, no routing library and no
// logging. Each session is stored as session-state stores it (record format s2): under SHA-256 of
// the id (with its label), its data sealed with AES-256-GCM under a fresh data key on every write,
// that key wrapped under a key of its slot's own (HMAC-SHA-256 keyed by HMAC-SHA-256(id, label),
// over a label and a random salt), the lifecycle in the record's header, bound with the storage
// key as associated data, metadata beside it.
// create = 1 put; get = 1 getWithMetadata; add = 1 getWithMetadata + 1 put; touch (within the
// renewal interval) = 1 getWithMetadata and the record opened; delete = 1 delete; health touches
// no KV.
import { TTL, keys, lifecycle, open, seal } from './sealing.js';

const encoder = new TextEncoder();

export default {
  async fetch(request, env) {
    const [, route, id] = new URL(request.url).pathname.split('/');
    const kv = env.sessionstore;
    switch (route) {
      case 'create': {
        const sessionId = crypto.randomUUID();
        const derived = await keys(sessionId);
        const meta = lifecycle();
        const value = await seal(derived, meta, await request.arrayBuffer());
        await kv.put(derived.name, value, { expirationTtl: TTL, metadata: JSON.stringify(meta) });
        return new Response(sessionId, { status: 201 });
      }
      case 'get': {
        const derived = await keys(id);
        const { value, metadata: meta } = await kv.getWithMetadata(derived.name, 'arrayBuffer');
        if (value === null) return new Response('not found', { status: 404 });
        const data = await open(derived, new Uint8Array(value));
        const { version } = JSON.parse(meta);
        return new Response(data, { headers: { 'content-type': 'application/json', etag: `"${version}"` } });
      }
      case 'touch': {
        const derived = await keys(id);
        const { value, metadata: meta } = await kv.getWithMetadata(derived.name, 'arrayBuffer');
        if (value === null) return new Response('not found', { status: 404 });
        await open(derived, new Uint8Array(value));
        const { expiresAt } = JSON.parse(meta);
        return new Response(null, { status: 204, headers: { 'session-expires': new Date(expiresAt).toISOString() } });
      }
      case 'add': {
        const derived = await keys(id);
        const { value, metadata: meta } = await kv.getWithMetadata(derived.name, 'arrayBuffer');
        const data = await open(derived, new Uint8Array(value));
        const merged = JSON.stringify({ ...JSON.parse(new TextDecoder().decode(data)), ...(await request.json()) });
        const next = lifecycle(JSON.parse(meta));
        const sealed = await seal(derived, next, encoder.encode(merged));
        await kv.put(derived.name, sealed, { expirationTtl: TTL, metadata: JSON.stringify(next) });
        return new Response(merged, { headers: { 'content-type': 'application/json' } });
      }
      case 'delete':
        await kv.delete((await keys(id)).name);
        return new Response(null, { status: 204 });
      case 'health':
        return new Response('{"status":"ok"}');
      default:
        return new Response('not found', { status: 404 });
    }
  },
};
