// OAuth with PKCE as a desktop app does it: signInWithOAuth builds the authorize URL with a
// code challenge; a "browser" (this test, over plain HTTP) signs in on the sandbox's stand-in
// provider page and follows the redirect to a loopback address; exchangeCodeForSession trades
// the code (once) for a session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, signedIn } from './lib.mjs';

const redirectTo = 'http://127.0.0.1:53682/callback';

/** Plays the browser: loads the sign-in page, posts the form, returns the redirect target. */
async function browserSignIn(authorizeUrl, email, password) {
  const page = await fetch(authorizeUrl, { redirect: 'manual' });
  assert.equal(page.status, 200, 'the authorize URL shows a sign-in page');
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  const html = await page.text();
  const form = html.match(/<form[^>]*>/i)?.[0];
  assert.ok(form, 'the page has a form');
  const action = form.match(/action="([^"]*)"/i)?.[1]?.replaceAll('&amp;', '&') ?? authorizeUrl;
  const fields = new URLSearchParams();
  for (const input of html.matchAll(/<input[^>]*>/gi)) {
    const name = input[0].match(/name="([^"]*)"/i)?.[1];
    const value = input[0].match(/value="([^"]*)"/i)?.[1] ?? '';
    if (name) fields.set(name, value.replaceAll('&amp;', '&').replaceAll('&quot;', '"'));
  }
  fields.set('email', email);
  fields.set('password', password);
  const posted = await fetch(new URL(action, authorizeUrl), {
    method: 'POST',
    body: fields,
    redirect: 'manual',
  });
  assert.ok([302, 303].includes(posted.status), `sign-in redirects (got ${posted.status})`);
  return new URL(posted.headers.get('location'));
}

test('PKCE: authorize, sign in on the page, redirect with ?code=, exchange once', async () => {
  const { user, email, password } = await signedIn('pkce');
  const sb = client({ auth: { flowType: 'pkce' } });
  const { data, error } = await sb.auth.signInWithOAuth({
    provider: 'github',
    options: { redirectTo, skipBrowserRedirect: true },
  });
  assert.equal(error, null);
  const authorize = new URL(data.url);
  assert.ok(authorize.searchParams.get('code_challenge'), 'supabase-js sent a code challenge');

  const back = await browserSignIn(data.url, email, password);
  assert.equal(`${back.origin}${back.pathname}`, redirectTo);
  const code = back.searchParams.get('code');
  assert.ok(code, 'the redirect carries ?code=');

  const exchanged = await sb.auth.exchangeCodeForSession(code);
  assert.equal(exchanged.error, null);
  assert.equal(exchanged.data.user.id, user.id);
  assert.ok(exchanged.data.session.access_token);

  // The code is single use.
  const again = client({ auth: { flowType: 'pkce' } });
  const replay = await again.auth.exchangeCodeForSession(code);
  assert.ok(replay.error, 'a used code is refused');
});

test('PKCE: a wrong code verifier is refused', async () => {
  const { email, password } = await signedIn('pkce-bad');
  const sb = client({ auth: { flowType: 'pkce' } });
  const { data } = await sb.auth.signInWithOAuth({
    provider: 'github',
    options: { redirectTo, skipBrowserRedirect: true },
  });
  const back = await browserSignIn(data.url, email, password);
  const code = back.searchParams.get('code');
  // A different client never saw the verifier; send a made-up one straight to the endpoint.
  const res = await fetch(new URL('/auth/v1/token?grant_type=pkce', data.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', apikey: process.env.QUIRE_ANON_KEY },
    body: JSON.stringify({ auth_code: code, code_verifier: 'x'.repeat(56) }),
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error_code ?? body.code, 'bad_code_verifier');
});
