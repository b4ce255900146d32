// Storage adapters: where the SDK keeps what must survive a reload (the last seq seen per room,
// the password flow's refresh token). The interface is two methods, each may return a promise:
//   get(key) -> string | null        set(key, value: string | null)   (null removes the key)

/** In memory only (the default): positions last as long as the client object. */
export function memoryStorage() {
  const m = new Map();
  return {
    get: (k) => (m.has(k) ? m.get(k) : null),
    set: (k, v) => {
      if (v === null || v === undefined) m.delete(k);
      else m.set(k, String(v));
    },
  };
}

/** window.localStorage (or any object with getItem/setItem/removeItem), keys prefixed. */
export function localStorageAdapter(prefix = 'chatd:', ls = globalThis.localStorage) {
  if (!ls) throw new Error('localStorage is not available');
  return {
    get: (k) => ls.getItem(prefix + k),
    set: (k, v) => {
      if (v === null || v === undefined) ls.removeItem(prefix + k);
      else ls.setItem(prefix + k, String(v));
    },
  };
}

/** IndexedDB (browsers; one object store "kv" in database `name`). */
export function indexedDBStorage(name = 'chatd', idb = globalThis.indexedDB) {
  if (!idb) throw new Error('IndexedDB is not available');
  let dbp = null;
  const db = () => {
    if (!dbp) {
      dbp = new Promise((resolve, reject) => {
        const req = idb.open(name, 1);
        req.onupgradeneeded = () => req.result.createObjectStore('kv');
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return dbp;
  };
  const run = async (mode, fn) => {
    const d = await db();
    return new Promise((resolve, reject) => {
      const tx = d.transaction('kv', mode);
      const req = fn(tx.objectStore('kv'));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  };
  return {
    get: async (k) => {
      const v = await run('readonly', (s) => s.get(k));
      return v === undefined ? null : v;
    },
    set: (k, v) =>
      run('readwrite', (s) => (v === null || v === undefined ? s.delete(k) : s.put(String(v), k))),
  };
}
