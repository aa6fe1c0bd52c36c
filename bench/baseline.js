// The floor of this runtime: a plain JavaScript Worker doing the same KV operations and the same
// cryptography per route as session-state, with no validation, no routing library and no
// logging. Each session is stored as session-state stores it: under SHA-256 of the id (with its
// label), its data sealed with AES-256-GCM under a random data key, that key wrapped under
// HMAC-SHA-256(id, label), the storage key as associated data, metadata beside it.
// create = 1 put; get = 1 getWithMetadata; add = 1 getWithMetadata + 1 put; delete = 1 delete;
// health touches no KV.
const TTL = 1800;
const subtle = crypto.subtle;
const encoder = new TextEncoder();
const SLOT_LABEL = encoder.encode('session-state/v1/slot\0');
const DATA_LABEL = encoder.encode('session-state/v1/data\0');

function metadata(previous) {
  const now = Date.now();
  return JSON.stringify({
    createdAt: previous?.createdAt ?? now, updatedAt: now, expiresAt: now + TTL * 1000,
    version: (previous?.version ?? 0) + 1,
  });
}

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) { out.set(new Uint8Array(part), at); at += part.byteLength; }
  return out;
};
const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
const gcm = (iv, additionalData) => ({ name: 'AES-GCM', iv, additionalData });

/** The storage key (as bytes and as the KV key) and the wrap key of `id`. */
async function keys(id) {
  const key = await subtle.digest('SHA-256', encoder.encode(`session-state/v1/key\0${id}`));
  const hmac = await subtle.importKey('raw', encoder.encode(id), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const wrapRaw = await subtle.sign('HMAC', hmac, encoder.encode('session-state/v1/wrap'));
  const wrap = await subtle.importKey('raw', wrapRaw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  return { key: new Uint8Array(key), name: `s1:${hex(key)}`, wrap };
}

async function seal({ key, wrap }, data, previous) {
  let opened = previous;
  if (!opened) {
    const raw = crypto.getRandomValues(new Uint8Array(32));
    const slotIv = crypto.getRandomValues(new Uint8Array(12));
    const wrapped = await subtle.encrypt(gcm(slotIv, concat(SLOT_LABEL, key)), wrap, raw);
    const dataKey = await subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
    opened = { dataKey, slot: concat(slotIv, wrapped) };
  }
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await subtle.encrypt(gcm(iv, concat(DATA_LABEL, key)), opened.dataKey, data);
  return concat(encoder.encode('s1'), new Uint8Array([1]), opened.slot, iv, sealed);
}

async function open({ key, wrap }, bytes) {
  const slot = bytes.subarray(3, 63);
  const raw = await subtle.decrypt(gcm(slot.subarray(0, 12), concat(SLOT_LABEL, key)), wrap, slot.subarray(12));
  const dataKey = await subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  const data = await subtle.decrypt(gcm(bytes.subarray(63, 75), concat(DATA_LABEL, key)), dataKey, bytes.subarray(75));
  return { opened: { dataKey, slot }, data };
}

export default {
  async fetch(request, env) {
    const [, route, id] = new URL(request.url).pathname.split('/');
    const kv = env.sessionstore;
    switch (route) {
      case 'create': {
        const sessionId = crypto.randomUUID();
        const derived = await keys(sessionId);
        const value = await seal(derived, await request.arrayBuffer());
        await kv.put(derived.name, value, { expirationTtl: TTL, metadata: metadata() });
        return new Response(sessionId, { status: 201 });
      }
      case 'get': {
        const derived = await keys(id);
        const { value, metadata: meta } = await kv.getWithMetadata(derived.name, 'arrayBuffer');
        if (value === null) return new Response('not found', { status: 404 });
        const { data } = await open(derived, new Uint8Array(value));
        const { version } = JSON.parse(meta);
        return new Response(data, { headers: { 'content-type': 'application/json', etag: `"${version}"` } });
      }
      case 'add': {
        const derived = await keys(id);
        const { value, metadata: meta } = await kv.getWithMetadata(derived.name, 'arrayBuffer');
        const { opened, data } = await open(derived, new Uint8Array(value));
        const merged = JSON.stringify({ ...JSON.parse(new TextDecoder().decode(data)), ...(await request.json()) });
        const sealed = await seal(derived, encoder.encode(merged), opened);
        await kv.put(derived.name, sealed, { expirationTtl: TTL, metadata: metadata(JSON.parse(meta)) });
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
