// Realtime as supabase-js drives it (vsn 1.0.0): private channels authorized by RLS on
// realtime.messages, broadcasts sent from SQL with realtime.send(), token updates.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { signedIn } from './lib.mjs';

const db = new pg.Client({ connectionString: process.env.QUIRE_DB_URL });
await db.connect();
after(() => db.end());

/** `realtime.send` from SQL, one committed transaction per message. */
async function send(topic, event, payload, isPrivate = true) {
  await db.query('select realtime.send($1::jsonb, $2, $3, $4)', [JSON.stringify(payload), event, topic, isPrivate]);
}

/** Subscribes and resolves with the final status ('SUBSCRIBED', 'CHANNEL_ERROR', …) and the error. */
function subscribe(channel) {
  return new Promise((resolve) => {
    channel.subscribe((status, err) => {
      if (status !== 'SUBSCRIBED' && status !== 'CHANNEL_ERROR' && status !== 'TIMED_OUT') return;
      resolve({ status, err });
    });
  });
}

/** Collects the payloads of broadcast `event` on `channel`. */
function collect(channel, event) {
  const got = [];
  channel.on('broadcast', { event }, (message) => got.push(message));
  return got;
}

async function until(what, check, ms = 10_000) {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('A receives, in order, what realtime.send() commits to user:<A>', async () => {
  const a = await signedIn('rt-a');
  await a.sb.realtime.setAuth(a.session.access_token);
  const channel = a.sb.channel(`user:${a.user.id}`, { config: { private: true } });
  const got = collect(channel, 'note');
  const { status, err } = await subscribe(channel);
  assert.equal(status, 'SUBSCRIBED', String(err));

  for (let n = 1; n <= 5; n++) await send(`user:${a.user.id}`, 'note', { n });
  await until('five broadcasts', () => got.length >= 5);
  assert.deepEqual(got.map((m) => m.payload.n), [1, 2, 3, 4, 5]);
  assert.ok(got.every((m) => m.meta?.id), 'database broadcasts carry meta.id');
  await a.sb.removeAllChannels();
});

test('B cannot join user:<A>: the join is refused with Realtime\'s reason', async () => {
  const a = await signedIn('rt-owner');
  const b = await signedIn('rt-intruder');
  await b.sb.realtime.setAuth(b.session.access_token);
  const channel = b.sb.channel(`user:${a.user.id}`, { config: { private: true } });
  const got = collect(channel, 'note');
  const { status, err } = await subscribe(channel);
  assert.equal(status, 'CHANNEL_ERROR');
  assert.match(
    String(err?.message ?? err),
    new RegExp(`Unauthorized: You do not have permissions to read from this Channel topic: user:${a.user.id}`),
  );
  await send(`user:${a.user.id}`, 'note', { secret: true });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(got, []);
  await b.sb.removeAllChannels();
});

test('a public and a private channel of the same name are different topics', async () => {
  const a = await signedIn('rt-split');
  await a.sb.realtime.setAuth(a.session.access_token);
  const topic = `user:${a.user.id}`;
  const privateChannel = a.sb.channel(topic, { config: { private: true } });
  const gotPrivate = collect(privateChannel, 'x');
  assert.equal((await subscribe(privateChannel)).status, 'SUBSCRIBED');
  const other = (await signedIn('rt-split-2')).sb;
  const publicChannel = other.channel(topic, { config: { private: false } });
  const gotPublic = collect(publicChannel, 'x');
  assert.equal((await subscribe(publicChannel)).status, 'SUBSCRIBED');

  await send(topic, 'x', { to: 'private' }, true);
  await send(topic, 'x', { to: 'public' }, false);
  await until('both deliveries', () => gotPrivate.length >= 1 && gotPublic.length >= 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(gotPrivate.map((m) => m.payload.to), ['private']);
  assert.deepEqual(gotPublic.map((m) => m.payload.to), ['public']);
  await a.sb.removeAllChannels();
  await other.removeAllChannels();
});

test('setAuth with a refreshed token keeps the channel', async () => {
  const a = await signedIn('rt-refresh');
  await a.sb.realtime.setAuth(a.session.access_token);
  const channel = a.sb.channel(`user:${a.user.id}`, { config: { private: true } });
  const got = collect(channel, 'tick');
  assert.equal((await subscribe(channel)).status, 'SUBSCRIBED');
  const { data, error } = await a.sb.auth.refreshSession();
  assert.equal(error, null);
  await a.sb.realtime.setAuth(data.session.access_token);
  await new Promise((r) => setTimeout(r, 300));
  await send(`user:${a.user.id}`, 'tick', { after: 'refresh' });
  await until('the broadcast after the refresh', () => got.length >= 1);
  assert.equal(channel.state, 'joined');
  await a.sb.removeAllChannels();
});
