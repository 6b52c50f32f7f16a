// WebKit (Tauri's web view on Linux and macOS) does not make ReadableStream
// async-iterable yet; pdf.js's getTextContent relies on `for await` over one.

type Iterable = ReadableStream & { [Symbol.asyncIterator]?: unknown; values?: unknown };

const proto = ReadableStream.prototype as Iterable;
if (typeof proto[Symbol.asyncIterator] !== 'function') {
  const values = async function* <T>(this: ReadableStream<T>): AsyncGenerator<T> {
    const reader = this.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  };
  Object.defineProperty(proto, Symbol.asyncIterator, { value: values, configurable: true, writable: true });
  if (typeof proto.values !== 'function') Object.defineProperty(proto, 'values', { value: values, configurable: true, writable: true });
}

export {};
