// What the bench scripts send (npm run bench, bench/profile.mjs, bench/isolate.mjs), made in one
// place so that their figures are of the same requests.

/** A session's data of about `bytes` bytes of JSON: a user, roles, and filler members. */
export function session(bytes) {
  const data = { user: 'ada', roles: ['admin', 'editor'], createdBy: 'bench' };
  let i = 0;
  while (JSON.stringify(data).length < bytes - 40) data[`k${i++}`] = 'x'.repeat(Math.min(64, bytes - JSON.stringify(data).length - 48));
  return JSON.stringify(data);
}

/** The PATCH body: ten new members. */
export const PATCH = JSON.stringify(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`p${i}`, `value-${i}`])));
