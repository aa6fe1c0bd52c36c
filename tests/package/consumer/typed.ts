// Type-checks a caller against the installed declarations.
import { createSessionClient, SessionStateError } from '@session-state/client';

export async function use(fetcher: { fetch: typeof fetch }): Promise<string> {
  const sessions = createSessionClient(fetcher);
  const { id, expiresAt } = await sessions.create({ user: 'ada' }, { ttl: 60 });
  const session = await sessions.get(id);
  const codes: SessionStateError['code'][] = ['precondition_failed', 'invalid_if_match'];
  return `${id} ${expiresAt} ${session?.version ?? 0} ${codes.join()}`;
}
