// A channel whose token expires is closed by the server (the runner starts this suite's
// sandbox with access tokens that live a few seconds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signedIn } from './lib.mjs';

test('an expired token closes the private channel', async () => {
  const a = await signedIn('rt-expiry');
  await a.sb.realtime.setAuth(a.session.access_token);
  const statuses = [];
  const channel = a.sb.channel(`user:${a.user.id}`, { config: { private: true } });
  const systems = [];
  channel.on('system', {}, (m) => systems.push(m));
  await new Promise((resolve) => {
    channel.subscribe((status) => {
      statuses.push(status);
      if (status === 'SUBSCRIBED') resolve();
    });
  });
  const lifetime = (a.session.expires_at - Math.floor(Date.now() / 1000)) * 1000;
  const start = Date.now();
  while (channel.state === 'joined' && Date.now() - start < lifetime + 15_000) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.notEqual(channel.state, 'joined', 'the channel was closed after the token expired');
  assert.ok(
    systems.some((m) => /Token has expired/.test(m.message ?? '')),
    `a system message said why: ${JSON.stringify(systems)}`,
  );
  await a.sb.removeAllChannels();
});
