// An in-memory stand-in for the Rust shell: Vitest uses it, and `vite dev`
// serves it at `?fake` so the UI can be worked on without the desktop build.
// It follows IPC.md's shapes and rev rules (one increasing counter).

import type { Backend, DragDrop, Unlisten } from './backend';
import { makePdf } from './fake-pdf';
import type {
  AuthStatus,
  ChunkHit,
  Conversation,
  Document,
  ErrorCode,
  ErrorView,
  LiveState,
  Message,
  Update,
  UpdateEvent,
  UploadEvent,
  Uuid,
} from './types';

export interface FakeOptions {
  signedIn?: boolean;
  /** Milliseconds between streamed deltas. */
  tokenMs?: number;
  /** Seed conversations and documents. */
  seed?: boolean;
  /** How many times the canned answer repeats (long answers for smoothness checks). */
  answerRepeat?: number;
  /** Files Quire was started with ("Open with Quire"). */
  opened?: string[];
}

export interface FakeBackend extends Backend {
  /** Streams an answer as if asked on another device. */
  remoteAnswer(conversationId?: Uuid): void;
  setLive(state: LiveState['state']): void;
  /** Makes the next `resync` happen. */
  resync(): void;
  /** Hands files to the window, as a second launch does. */
  openWith(paths: string[]): void;
}

type Handler<T> = (payload: T) => void;

let counter = 0;
function uuid(): Uuid {
  counter += 1;
  const hex = counter.toString(16).padStart(12, '0');
  return `00000000-0000-4000-8000-${hex}`;
}

const now = (offsetMs = 0) => new Date(Date.now() + offsetMs).toISOString();
const fail = (code: ErrorCode, message: string): ErrorView => ({ code, message });

const PAGES: Record<string, string[][]> = {};

function pagesFor(title: string, count: number): string[][] {
  const pages: string[][] = [];
  for (let p = 1; p <= count; p++) {
    pages.push([
      `${title} - page ${p}`,
      '',
      p === 2 ? 'The tenant must give sixty days written notice before moving out.' : 'This page is filler text.',
      p === 3 ? 'Rent increases are capped at three percent per year.' : 'Nothing on this line matters.',
      'The quick brown fox jumps over the lazy dog.',
    ]);
  }
  return pages;
}

const ANSWER = [
  'Based on your lease, you must give **sixty days** written notice before moving out [1].',
  '',
  'A few other points worth knowing:',
  '',
  '- Rent increases are capped at *three percent* per year [2].',
  '- The notice has to be in writing; an email counts if the landlord agreed to it.',
  '',
  'See also the [tenant guide](https://example.org/tenants) for background.',
].join('\n');

export function createFakeBackend(options: FakeOptions = {}): FakeBackend {
  const tokenMs = options.tokenMs ?? 30;
  let rev = 0;
  let signedIn = options.signedIn ?? false;
  let email = 'ada@example.org';
  let live: LiveState = { state: 'live', detail: null, retry_in_ms: null };
  const conversations = new Map<Uuid, Conversation>();
  const documents = new Map<Uuid, Document>();
  const messages = new Map<Uuid, Message>();
  const stopped = new Set<Uuid>();
  const handlers = {
    auth: new Set<Handler<AuthStatus>>(),
    live: new Set<Handler<LiveState>>(),
    update: new Set<Handler<UpdateEvent>>(),
    resync: new Set<Handler<void>>(),
    upload: new Set<Handler<UploadEvent>>(),
    drag: new Set<Handler<DragDrop>>(),
    opened: new Set<Handler<void>>(),
  };
  let opened = [...(options.opened ?? [])];

  const subscribe = <T>(set: Set<Handler<T>>, handler: Handler<T>): Promise<Unlisten> => {
    set.add(handler);
    return Promise.resolve(() => set.delete(handler));
  };
  const emit = (update: Update) => {
    rev += 1;
    const event = { rev, update: structuredClone(update) };
    for (const h of handlers.update) h(event);
  };
  const later = (ms: number, fn: () => void) => setTimeout(fn, ms);
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const needSignIn = () => {
    if (!signedIn) throw fail('not_signed_in', 'You are not signed in. Sign in and try again.');
  };

  function addDocument(title: string, status: Document['status'], extra: Partial<Document> = {}): Document {
    const doc: Document = {
      id: uuid(),
      title,
      status,
      error: null,
      page_count: 3,
      byte_size: 48_000,
      updated_at: now(),
      upload: null,
      uploading: null,
      ...extra,
    };
    documents.set(doc.id, doc);
    PAGES[doc.id] = pagesFor(title, doc.page_count ?? 3);
    return doc;
  }

  function addConversation(title: string | null, ageMs: number): Conversation {
    const c: Conversation = { id: uuid(), title, created_at: now(-ageMs), updated_at: now(-ageMs), archived_at: null, document_ids: [] };
    conversations.set(c.id, c);
    return c;
  }

  function addMessage(conversation: Conversation, role: Message['role'], content: string, extra: Partial<Message> = {}): Message {
    const seq = [...messages.values()].filter((m) => m.conversation_id === conversation.id).length;
    const m: Message = {
      id: uuid(),
      conversation_id: conversation.id,
      seq,
      role,
      status: 'complete',
      content,
      citations: [],
      sources: [],
      question_id: null,
      error: null,
      tools: [],
      ...extra,
    };
    messages.set(m.id, m);
    return m;
  }

  if (options.seed ?? true) {
    const lease = addDocument('Apartment lease 2026.pdf', 'ready', { page_count: 4 });
    addDocument('Scanned receipt.pdf', 'no_text', { page_count: 1 });
    addDocument('Insurance policy.pdf', 'failed', { error: 'The text could not be extracted: the file is damaged.' });
    addDocument('Employment contract.pdf', 'indexing');
    const c1 = addConversation('Notice period in my lease', 60_000);
    const q = addMessage(c1, 'user', 'How much notice do I need to give before moving out?');
    addMessage(c1, 'assistant', ANSWER, {
      question_id: q.id,
      citations: [
        { key: '1', chunk_id: null, document_id: lease.id, title: lease.title, page: 2, excerpt: 'The tenant must give sixty days written notice' },
        { key: '2', chunk_id: null, document_id: lease.id, title: lease.title, page: 3, page_end: 4, excerpt: 'Rent increases are capped at three percent' },
      ],
      sources: [
        { id: uuid(), document_id: lease.id, chunk_id: uuid(), page: 2, page_end: 2, title: lease.title },
        { id: uuid(), document_id: lease.id, chunk_id: uuid(), page: 3, page_end: 4, title: lease.title },
      ],
    });
    const c2 = addConversation('A long conversation', 3_600_000);
    for (let i = 0; i < 120; i++) {
      addMessage(c2, i % 2 ? 'assistant' : 'user', i % 2 ? `Answer number ${i}: *fine*.` : `Question number ${i}?`);
    }
    addConversation('Comparing two contracts', 86_400_000);
    addConversation(null, 2 * 86_400_000);
  }

  async function streamAnswer(conversation: Conversation, question: Message, sources: ChunkHit[], seq = (question.seq ?? 0) + 1): Promise<Message> {
    const answer: Message = {
      id: uuid(),
      conversation_id: conversation.id,
      seq,
      role: 'assistant',
      status: 'streaming',
      content: '',
      citations: [],
      sources: sources.map((s) => ({
        id: s.id,
        document_id: s.document_id,
        chunk_id: s.chunk_id,
        page: s.page,
        page_end: s.page_end ?? s.page,
        title: s.title,
      })),
      question_id: question.id,
      error: null,
      tools: [],
    };
    messages.set(answer.id, answer);
    const run = async () => {
      await wait(tokenMs * 4);
      emit({ type: 'message', message: answer, appended: null });
      const text = sources.length
        ? Array.from({ length: options.answerRepeat ?? 1 }, () => ANSWER).join('\n\n')
        : 'I could not find anything about that in your documents, so this answer comes from general knowledge: usually **thirty days** is common, but check your local rules.';
      const words = text.split(/(?<=\s)/);
      for (const word of words) {
        if (stopped.has(answer.id)) break;
        await wait(tokenMs);
        answer.content += word;
        emit({ type: 'message', message: answer, appended: word });
      }
      answer.status = stopped.has(answer.id) ? 'stopped' : 'complete';
      if (sources.length && answer.status === 'complete') {
        answer.citations = sources.slice(0, 2).map((s, i) => ({
          key: String(i + 1),
          document_id: s.document_id,
          chunk_id: s.chunk_id,
          title: s.title,
          page: s.page,
          page_end: s.page_end ?? s.page,
          excerpt: s.text.split('.')[0],
        }));
      }
      emit({ type: 'message', message: answer, appended: null });
      conversation.updated_at = now();
      emit({ type: 'conversation', ...conversation });
    };
    void run();
    return answer;
  }

  function setDoc(doc: Document, patch: Partial<Document>) {
    Object.assign(doc, patch, { updated_at: now() });
    emit({ type: 'document', ...doc });
  }

  function upload(path: string) {
    const name = path.split(/[\\/]/).pop() ?? path;
    const emitUpload = (e: UploadEvent) => handlers.upload.forEach((h) => h(e));
    later(100, () => {
      if (!name.toLowerCase().endsWith('.pdf')) {
        emitUpload({ type: 'failed', path, error: fail('not_a_pdf', `${name} is not a PDF (its bytes do not start like one).`) });
        return;
      }
      const total = 2_400_000;
      emitUpload({ type: 'checked', path, bytes: total });
      const doc = addDocument(name, 'uploading', { byte_size: total, upload: { sent: 0, total }, uploading: 'here' });
      emit({ type: 'document', ...doc });
      emitUpload({ type: 'registered', path, document_id: doc.id });
      let sent = 0;
      const tick = () => {
        if (!documents.has(doc.id)) return;
        sent = Math.min(total, sent + total / 8);
        doc.upload = { sent, total };
        emitUpload({ type: 'progress', document_id: doc.id, sent, total });
        emit({ type: 'document', ...doc });
        if (sent < total) return later(250, tick);
        emitUpload({ type: 'stored', document_id: doc.id });
        setDoc(doc, { status: 'stored', upload: null, uploading: null });
        later(600, () => setDoc(doc, { status: 'extracting' }));
        later(1800, () => {
          if (/broken/i.test(name)) setDoc(doc, { status: 'failed', error: 'The PDF could not be read: its cross-reference table is damaged.' });
          else if (/scan/i.test(name)) setDoc(doc, { status: 'no_text' });
          else setDoc(doc, { status: 'indexing' });
        });
        later(3200, () => {
          if (doc.status === 'indexing') setDoc(doc, { status: 'ready' });
        });
      };
      later(200, tick);
    });
  }

  // HTML5 drag events stand in for Tauri's native drop (the file names act as paths).
  if (typeof window !== 'undefined') {
    let depth = 0;
    window.addEventListener('dragenter', (e) => {
      e.preventDefault();
      depth += 1;
      if (depth === 1) handlers.drag.forEach((h) => h({ type: 'enter', paths: [] }));
    });
    window.addEventListener('dragover', (e) => e.preventDefault());
    window.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) handlers.drag.forEach((h) => h({ type: 'leave' }));
    });
    window.addEventListener('drop', (e) => {
      e.preventDefault();
      depth = 0;
      const paths = [...(e.dataTransfer?.files ?? [])].map((f) => `/home/ada/Downloads/${f.name}`);
      handlers.drag.forEach((h) => h({ type: 'drop', paths }));
    });
  }

  const backend: FakeBackend = {
    async session() {
      return {
        status: signedIn ? { state: 'signed_in', user: { id: uuid(), email } } : { state: 'signed_out', reason: null },
        live,
        profile: 'default',
        api_host: 'quire.example.org',
        server: { address: 'https://quire.example.org', host: 'quire.example.org', managed: false },
        default_server: null,
      };
    },
    async connect(address) {
      await wait(300);
      const host = address.trim().replace(/^https?:\/\//, '').replace(/\/.*$/, '');
      if (!host.includes('.')) throw fail('server_unreachable', `Quire cannot reach ${host}. Check the address and your connection, then try again.`);
      return { address: `https://${host}`, host, managed: false };
    },
    async signInMethods() {
      return { password: true, signup: true, confirm_email: true, providers: ['github', 'google'] };
    },
    async signUp(e) {
      await wait(300);
      return { state: 'check_email', email: e };
    },
    async sendPasswordReset() {
      await wait(300);
    },
    async resetPassword(e, code, password) {
      return backend.signIn(e, code === '123456' ? 'password' : password);
    },
    async signIn(e, password) {
      await wait(300);
      if (!e.includes('@')) throw fail('bad_input', 'Enter your email address, like name@example.org.');
      if (password !== 'password') throw fail('invalid_credentials', 'That email and password do not match an account. Check them and try again.');
      signedIn = true;
      email = e;
      const user = { id: uuid(), email };
      handlers.auth.forEach((h) => h({ state: 'signed_in', user }));
      return user;
    },
    async signInBrowser() {
      await wait(1500);
      signedIn = true;
      const user = { id: uuid(), email };
      handlers.auth.forEach((h) => h({ state: 'signed_in', user }));
      return user;
    },
    async cancelSignIn() {},
    async signOut() {
      signedIn = false;
      handlers.auth.forEach((h) => h({ state: 'signed_out', reason: null }));
    },
    async snapshot() {
      needSignIn();
      return structuredClone({ rev, conversations: [...conversations.values()], documents: [...documents.values()] });
    },
    async openConversation(id, before, limit = 50) {
      needSignIn();
      await wait(80);
      if (!conversations.has(id)) throw fail('not_found', 'That conversation no longer exists.');
      const all = [...messages.values()]
        .filter((m) => m.conversation_id === id && (before === undefined || (m.seq ?? 0) < before))
        .sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
      const page = all.slice(-limit);
      return structuredClone({ rev, messages: page, before: all.length > limit ? (page[0].seq ?? null) : null });
    },
    async searchConversations(query) {
      needSignIn();
      await wait(120);
      const q = query.toLowerCase();
      const hits = [...conversations.values()].filter(
        (c) =>
          (c.title ?? '').toLowerCase().includes(q) ||
          [...messages.values()].some((m) => m.conversation_id === c.id && m.content.toLowerCase().includes(q)),
      );
      return structuredClone(hits.sort((a, b) => b.updated_at.localeCompare(a.updated_at)));
    },
    async renameConversation(id, title) {
      const c = conversations.get(id);
      if (!c) throw fail('not_found', 'That conversation no longer exists.');
      c.title = title;
      c.updated_at = now();
      emit({ type: 'conversation', ...c });
      return structuredClone(c);
    },
    async deleteConversation(id) {
      conversations.delete(id);
      for (const m of [...messages.values()]) if (m.conversation_id === id) messages.delete(m.id);
      emit({ type: 'conversation_removed', id });
    },
    async createConversation(title, documentIds) {
      needSignIn();
      if (documentIds.some((id) => !documents.has(id))) throw fail('not_found', 'That document was not found. It may have been deleted, or it is not yours.');
      const c = addConversation(title, 0);
      c.document_ids = [...new Set(documentIds)];
      emit({ type: 'conversation', ...c });
      return structuredClone(c);
    },
    async setScope(id, documentIds) {
      const c = conversations.get(id);
      if (!c) throw fail('not_found', 'That conversation no longer exists.');
      if (documentIds.some((d) => !documents.has(d))) throw fail('not_found', 'That document was not found. It may have been deleted, or it is not yours.');
      c.document_ids = [...new Set(documentIds)];
      c.updated_at = now();
      emit({ type: 'conversation', ...c });
      return structuredClone(c);
    },
    async retrieve(text, conversationId = null) {
      needSignIn();
      await wait(400);
      if (/weather|capital|recipe/i.test(text)) return [];
      const scope = (conversationId && conversations.get(conversationId)?.document_ids) || [];
      const lease = [...documents.values()].find((d) => d.status === 'ready' && (scope.length === 0 || scope.includes(d.id)));
      if (!lease) return [];
      return [
        { id: uuid(), document_id: lease.id, chunk_id: uuid(), title: lease.title, page: 2, page_end: 2, text: 'The tenant must give sixty days written notice before moving out.', score: 0.82 },
        { id: uuid(), document_id: lease.id, chunk_id: uuid(), title: lease.title, page: 3, page_end: 4, text: 'Rent increases are capped at three percent per year.', score: 0.61 },
      ];
    },
    async ask(conversationId, text, sources) {
      needSignIn();
      if (live.state === 'offline') throw fail('offline', 'Quire cannot reach the server. Check your connection and try again.');
      await wait(150);
      let conversation = conversationId ? conversations.get(conversationId) : undefined;
      if (!conversation) {
        conversation = addConversation(text.slice(0, 48), 0);
        emit({ type: 'conversation', ...conversation });
      }
      const question = addMessage(conversation, 'user', text);
      emit({ type: 'message', message: question, appended: null });
      const answer = await streamAnswer(conversation, question, sources);
      return { conversation_id: conversation.id, message_id: answer.id };
    },
    async regenerate(messageId, sources) {
      needSignIn();
      await wait(150);
      const answer = messages.get(messageId);
      const conversation = answer && conversations.get(answer.conversation_id);
      if (!answer || answer.role !== 'assistant' || !conversation) throw fail('not_found', 'That answer no longer exists.');
      const all = [...messages.values()].filter((m) => m.conversation_id === conversation.id);
      const question =
        (answer.question_id && messages.get(answer.question_id)) ||
        all.filter((m) => m.role === 'user' && (m.seq ?? 0) < (answer.seq ?? 0)).sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0))[0];
      if (!question) throw fail('not_found', 'That answer no longer exists.');
      const seq = Math.max(...all.map((m) => m.seq ?? 0)) + 1;
      const version = await streamAnswer(conversation, question, sources, seq);
      return { conversation_id: conversation.id, message_id: version.id };
    },
    async stop(messageId) {
      stopped.add(messageId);
    },
    async uploadFiles(paths) {
      needSignIn();
      paths.forEach(upload);
    },
    async pickFiles() {
      needSignIn();
      const paths = ['/home/ada/Documents/Tax return 2025.pdf', '/home/ada/Documents/Old scan.pdf'];
      paths.forEach(upload);
      return paths.length;
    },
    async openedFiles() {
      const taken = opened;
      opened = [];
      return taken;
    },
    async retryDocument(id) {
      const doc = documents.get(id);
      if (!doc) throw fail('not_found', 'That document no longer exists.');
      setDoc(doc, { status: 'extracting', error: null });
      later(1500, () => setDoc(doc, { status: 'indexing' }));
      later(3000, () => setDoc(doc, { status: 'ready' }));
    },
    async deleteDocument(id) {
      documents.delete(id);
      emit({ type: 'document_removed', id });
    },
    async documentPdf(id) {
      await wait(150);
      const pages = PAGES[id];
      if (!pages) throw fail('not_found', 'That document no longer exists.');
      return makePdf(pages);
    },
    async saveDocument() {
      await wait(200);
      return true;
    },
    async exportConversation(id) {
      await wait(200);
      if (!conversations.get(id)) throw fail('not_found', 'That conversation no longer exists.');
      return true;
    },
    async suggestions() {
      const ready = [...documents.values()].filter((d) => d.status === 'ready');
      if (!ready.length) return [];
      return [
        ready.length === 1 ? `Summarise ${ready[0].title}` : 'Summarise the key points of my documents',
        'What do my documents say about notice periods?',
      ];
    },
    async answerText(messageId) {
      const m = messages.get(messageId);
      if (!m) throw fail('not_found', 'That answer no longer exists.');
      const sources = m.citations.map((c, i) => `[${c.key ?? i + 1}] ${c.title ?? 'Untitled document'}${c.page ? `, p. ${c.page}` : ''}`);
      return sources.length ? `${m.content}\n\nSources:\n${sources.join('\n')}` : m.content;
    },
    async openLink(url) {
      console.info('[fake] open_link', url);
      return true;
    },
    onAuth: (h) => subscribe(handlers.auth, h),
    onLive: (h) => subscribe(handlers.live, h),
    onUpdate: (h) => subscribe(handlers.update, h),
    onResync: (h) => subscribe(handlers.resync, h),
    onUpload: (h) => subscribe(handlers.upload, h),
    onDragDrop: (h) => subscribe(handlers.drag, h),
    onOpened: (h) => subscribe(handlers.opened, h),

    remoteAnswer(conversationId) {
      const conversation = (conversationId && conversations.get(conversationId)) || [...conversations.values()][0];
      if (!conversation) return;
      const question = addMessage(conversation, 'user', 'Asked on my phone: what about rent increases?');
      emit({ type: 'message', message: question, appended: null });
      void this.retrieve(question.content).then((hits) => streamAnswer(conversation, question, hits));
    },
    setLive(state) {
      live = { state, detail: state === 'offline' ? 'No network connection.' : null, retry_in_ms: state === 'reconnecting' ? 4000 : null };
      handlers.live.forEach((h) => h(live));
    },
    resync() {
      handlers.resync.forEach((h) => h());
    },
    openWith(paths) {
      opened.push(...paths);
      handlers.opened.forEach((h) => h());
    },
  };
  return backend;
}
