// A scripted DBSC device: a browser's side of W3C DBSC (w3c/webappsec-dbsc, spec.bs) in Node's
// WebCrypto. It keeps a key pair (ES256 or RS256) and signs the proofs the spec describes: a JWT
// with `typ: "dbsc+jwt"`, `alg`, the public key as `jwk` at registration only, `jti` the server's
// challenge; ES256 signatures as r ‖ s (what WebCrypto makes). What real browsers do that this
// does not: keep the key in hardware, and decide on their own when to refresh.
import { webcrypto } from 'node:crypto';

const { subtle } = webcrypto;

const PARAMS = {
  ES256: { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  RS256: {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

const b64url = (bytes) => Buffer.from(bytes).toString('base64url');
const part = (value) => b64url(Buffer.from(JSON.stringify(value)));

/** A device with a fresh key for `alg`. */
export async function device(alg = 'ES256') {
  const keys = await subtle.generateKey(PARAMS[alg].generate, true, ['sign', 'verify']);
  const { key_ops: _ops, ext: _ext, ...jwk } = await subtle.exportKey('jwk', keys.publicKey);
  return {
    alg,
    jwk,
    /** A proof for `challenge`: at registration (`register: true`) with the key, else without. */
    async proof(challenge, { register = false, header = {}, claims = {}, signWith = keys.privateKey } = {}) {
      const head = { typ: 'dbsc+jwt', alg, ...(register ? { jwk } : {}), ...header };
      const signed = `${part(head)}.${part({ jti: challenge, iat: Math.floor(Date.now() / 1000), ...claims })}`;
      const signature = await subtle.sign(PARAMS[alg].sign, signWith, Buffer.from(signed));
      return `${signed}.${b64url(new Uint8Array(signature))}`;
    },
    /** A key of another device, to sign with. */
    async otherKey() {
      return (await subtle.generateKey(PARAMS[alg].generate, true, ['sign', 'verify'])).privateKey;
    },
  };
}

/** A JWT with the given header, unsigned (`alg: none` and the like). */
export function unsigned(header, claims) {
  return `${part(header)}.${part(claims)}.`;
}

/** An sf-string (RFC 9651), as a browser sends the proof. */
export const sfString = (text) => `"${text.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;

/** The parameters of the first entry of a `Secure-Session-Registration` header. */
export function registration(header) {
  const match = /^\(([^)]*)\)((?:;[a-z_]+="[^"]*")*)/.exec(header ?? '');
  if (!match) return null;
  const params = Object.fromEntries([...match[2].matchAll(/;([a-z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  return { algorithms: match[1].split(' '), ...params };
}

/** `Secure-Session-Challenge: "<challenge>";id="<session identifier>"`. */
export function challengeOf(header) {
  const match = /^"([^"]*)";id="([^"]*)"$/.exec(header ?? '');
  return match ? { challenge: match[1], id: match[2] } : null;
}
