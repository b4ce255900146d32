/* store_sqlite_walbuf.h - a SQLite VFS that gathers a transaction's WAL frames into one write.
 *
 * SQLite appends each WAL frame with two write() calls (its 24-byte header, then the page), so a
 * group commit that dirtied 60 pages costs 120 system calls. This VFS wraps the default one and,
 * for WAL files only, keeps frames appended back to back in a buffer and writes them with one
 * pwrite() when the commit frame is complete. Anything else on the WAL file (a read, a sync, a
 * truncate, a write somewhere else, any other method) writes the buffer out first, so the file
 * is exactly what SQLite wrote whenever SQLite or another connection can look at it: a commit
 * becomes visible to readers only through the WAL index, which SQLite updates after the commit
 * frame's write returned, and by then the frames are in the file. A failed flush is returned by
 * the write that triggered it, so SQLite fails the commit as it would have. Database and other
 * files go straight to the default VFS.
 */
#ifndef CD_STORE_SQLITE_WALBUF_H
#define CD_STORE_SQLITE_WALBUF_H

#define STORE_WALBUF_VFS "chatd-walbuf"

/* Register the VFS (once per process; thread-safe). Returns 0, or -1 when SQLite has no default
 * VFS or refuses the registration; callers then open connections with the default VFS. */
int store__walbuf_register(void);

#endif
