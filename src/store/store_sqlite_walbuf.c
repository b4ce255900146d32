/* store_sqlite_walbuf.c - the WAL write-gathering VFS (see the header for the contract).
 *
 * Only one shape of write is gathered: a 24-byte frame header appended at the end of what is
 * buffered, then the page that follows it. Bytes 4..7 of a frame header are non-zero only in the
 * commit frame of a transaction; once that frame's page is in the buffer, the buffer is written.
 * Every other write, and every other method called on the file, writes the buffer out first and
 * then runs as usual, so a SQLite version that writes its WAL another way simply gets the default
 * behaviour.
 */
#include "store/store_sqlite_walbuf.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Bytes gathered before a forced write. Under 128 KiB: SQLite's unix VFS masks the length of one
 * write to 17 bits (seekAndWrite), so a larger buffer would be cut short. */
#define WALBUF_CAP    (127 * 1024)
#define WAL_FRAME_HDR 24

struct walfile {
    sqlite3_file base;  /* pMethods = &walbuf_io */
    sqlite3_file *real; /* the default VFS's file, allocated right after this struct */
    uint8_t *buf;       /* gathered frames, starting at file offset off; malloc'ed on first use */
    sqlite3_int64 off;
    int len;
    int page_next; /* 1: the last gathered write was a frame header; its page comes next */
    int commit;    /* 1: that header was a commit frame's */
};

static sqlite3_vfs walbuf_vfs;
static sqlite3_vfs *base_vfs;
static uv_once_t walbuf_once = UV_ONCE_INIT;
static int walbuf_ok;

static int flush(struct walfile *f)
{
    int rc = SQLITE_OK;
    if (f->len > 0) rc = f->real->pMethods->xWrite(f->real, f->buf, f->len, f->off);
    f->len = 0;
    f->page_next = 0;
    f->commit = 0;
    return rc;
}

static int wb_close(sqlite3_file *pf)
{
    struct walfile *f = (struct walfile *)pf;
    int rc = flush(f), rc2 = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int gather(struct walfile *f, const void *p, int n, sqlite3_int64 off)
{
    if (!f->buf && !(f->buf = malloc(WALBUF_CAP))) return -1;
    if (f->len == 0) f->off = off;
    memcpy(f->buf + f->len, p, (size_t)n);
    f->len += n;
    return 0;
}

static int wb_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off)
{
    struct walfile *f = (struct walfile *)pf;
    const uint8_t *b = p;
    int rc, appended = f->len == 0 || off == f->off + f->len;

    if (appended && n == WAL_FRAME_HDR && !f->page_next && f->len + n <= WALBUF_CAP) {
        if (gather(f, p, n, off) == 0) {
            f->page_next = 1;
            f->commit = (b[4] | b[5] | b[6] | b[7]) != 0;
            return SQLITE_OK;
        }
    } else if (appended && f->page_next && f->len + n <= WALBUF_CAP) {
        if (gather(f, p, n, off) == 0) {
            f->page_next = 0;
            return f->commit ? flush(f) : SQLITE_OK;
        }
    }
    /* Anything else (a page too large for what is left included): write out what is gathered,
     * then this write as it came. */
    if ((rc = flush(f)) != SQLITE_OK) return rc;
    return f->real->pMethods->xWrite(f->real, p, n, off);
}

/* Every other method on the WAL file writes out what is gathered first, then runs as usual. */
#define WB_FORWARD(name, method, params, args)                                                     \
    static int name params                                                                         \
    {                                                                                              \
        struct walfile *f = (struct walfile *)pf;                                                  \
        int rc = flush(f);                                                                         \
        return rc != SQLITE_OK ? rc : f->real->pMethods->method args;                              \
    }
WB_FORWARD(wb_read, xRead, (sqlite3_file * pf, void *p, int n, sqlite3_int64 off),
           (f->real, p, n, off))
WB_FORWARD(wb_truncate, xTruncate, (sqlite3_file * pf, sqlite3_int64 size), (f->real, size))
WB_FORWARD(wb_sync, xSync, (sqlite3_file * pf, int flags), (f->real, flags))
WB_FORWARD(wb_file_size, xFileSize, (sqlite3_file * pf, sqlite3_int64 *size), (f->real, size))
WB_FORWARD(wb_lock, xLock, (sqlite3_file * pf, int lock), (f->real, lock))
WB_FORWARD(wb_unlock, xUnlock, (sqlite3_file * pf, int lock), (f->real, lock))
WB_FORWARD(wb_check_reserved, xCheckReservedLock, (sqlite3_file * pf, int *out), (f->real, out))
WB_FORWARD(wb_file_control, xFileControl, (sqlite3_file * pf, int op, void *arg),
           (f->real, op, arg))
#undef WB_FORWARD

static int wb_sector_size(sqlite3_file *pf)
{
    struct walfile *f = (struct walfile *)pf;
    return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device_characteristics(sqlite3_file *pf)
{
    struct walfile *f = (struct walfile *)pf;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* Version 1: SQLite uses no shared-memory or memory-mapping method on a WAL file. */
static const sqlite3_io_methods walbuf_io = {
    .iVersion = 1,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
};

static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *pf, int flags,
                   int *out_flags)
{
    struct walfile *f = (struct walfile *)pf;
    int rc;
    (void)vfs;
    if (!(flags & SQLITE_OPEN_WAL)) return base_vfs->xOpen(base_vfs, name, pf, flags, out_flags);
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
    /* On failure pMethods stays NULL and SQLite does not call xClose. */
    if (rc == SQLITE_OK) f->base.pMethods = &walbuf_io;
    return rc;
}

static void walbuf_init(void)
{
    base_vfs = sqlite3_vfs_find(NULL);
    if (!base_vfs) return;
    walbuf_vfs = *base_vfs;
    walbuf_vfs.pNext = NULL;
    walbuf_vfs.zName = STORE_WALBUF_VFS;
    walbuf_vfs.szOsFile = (int)sizeof(struct walfile) + base_vfs->szOsFile;
    walbuf_vfs.xOpen = wb_open;
    walbuf_ok = sqlite3_vfs_register(&walbuf_vfs, 0) == SQLITE_OK;
}

int store__walbuf_register(void)
{
    uv_once(&walbuf_once, walbuf_init);
    return walbuf_ok ? 0 : -1;
}
