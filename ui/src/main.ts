import { mount } from 'svelte';
import App from './App.svelte';
import { createTauriBackend, type Backend } from './lib/backend';
import './style.css';

async function pickBackend(): Promise<Backend> {
  // The fake exists only in dev runs (or a build made with VITE_QUIRE_FAKE=1 for
  // screenshots); in a production build this branch is dead code and the fake
  // module is not bundled.
  if (import.meta.env.DEV || import.meta.env.VITE_QUIRE_FAKE === '1') {
    const params = new URLSearchParams(location.search);
    if (params.has('fake')) {
      const { createFakeBackend } = await import('./lib/fake-backend');
      const fake = createFakeBackend({
        signedIn: params.has('signed-in'),
        tokenMs: Number(params.get('token-ms') ?? 30),
        answerRepeat: Number(params.get('answer-repeat') ?? 1),
      });
      (window as unknown as { quireFake: unknown }).quireFake = fake;
      return fake;
    }
  }
  return createTauriBackend();
}

const target = document.getElementById('app');
if (target) {
  target.replaceChildren();
  void pickBackend().then((backend) => mount(App, { target, props: { backend } }));
}
