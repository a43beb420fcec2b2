/* iofail: an LD_PRELOAD shim that makes the Nth write or sync fail, to
 * prove that a failed commit is reported and never acknowledged.
 *
 * Interposes write, pwrite, pwrite64, fsync and fdatasync (the calls
 * SQLite's unix VFS makes to change a file and make it durable) and counts
 * the calls that match the filters below; the Nth one, and with
 * IOFAIL_MODE=always every one after it, returns -1 with the chosen errno
 * without touching the file.
 *
 *   IOFAIL_AFTER=N        the Nth counted call fails (1-based; unset or 0:
 *                         nothing fails, calls are only counted)
 *   IOFAIL_MODE=once|always                                (default once)
 *   IOFAIL_OPS=write,fsync  which families are counted: write covers
 *                         write/pwrite/pwrite64, fsync covers
 *                         fsync/fdatasync                  (default both)
 *   IOFAIL_PATH=substr    only fds whose /proc/self/fd link contains substr
 *                         (e.g. the database name, which also matches its
 *                         -wal and -journal files)        (default any fd)
 *   IOFAIL_SKIP=substr    fds whose link contains substr are neither counted
 *                         nor failed, even when IOFAIL_PATH matches (a
 *                         server's DB.mark sidecar next to DB)  (default none)
 *   IOFAIL_ARM=file       nothing is counted until `file` exists, so N counts
 *                         from a moment the test chooses (a server's first
 *                         request, not its start-up)    (default counting at once)
 *   IOFAIL_ERRNO=EIO|ENOSPC|EDQUOT|<number>                (default EIO)
 *   IOFAIL_REPORT=file    append "fail OP PATH N" for every injected
 *                         failure and "calls N" at exit, so a test can
 *                         tell whether a run reached the Nth call at all
 *   IOFAIL_TRACE=1        also append "call OP PATH N" for every counted
 *                         call, so a counting run shows where each N falls
 *
 * Built without sanitizers: under ASan the shim is preloaded after the ASan
 * runtime (see tests/faults/CMakeLists.txt), and dlsym(RTLD_NEXT) then
 * finds ASan's interceptors, which forward to libc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum iofail_op { IOFAIL_WRITE = 1, IOFAIL_SYNC = 2 };

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef int (*sync_fn)(int);

static write_fn real_write;
static pwrite_fn real_pwrite;
static pwrite64_fn real_pwrite64;
static sync_fn real_fsync;
static sync_fn real_fdatasync;

/* Read once by the constructor, before any thread SQLite might start. */
static unsigned long fail_after;
static int fail_always;
static int ops_counted = IOFAIL_WRITE | IOFAIL_SYNC;
static const char *path_filter;
static const char *skip_filter;
static const char *arm_path;
static atomic_int armed;
static int fail_errno = EIO;
static int report_fd = -1;
static int trace;

static atomic_ulong calls;

static void iofail_resolve(void)
{
    real_write = (write_fn)dlsym(RTLD_NEXT, "write");
    real_pwrite = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = (pwrite64_fn)dlsym(RTLD_NEXT, "pwrite64");
    real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
}

static int iofail_parse_errno(const char *s)
{
    if (strcmp(s, "EIO") == 0)
        return EIO;
    if (strcmp(s, "ENOSPC") == 0)
        return ENOSPC;
    if (strcmp(s, "EDQUOT") == 0)
        return EDQUOT;
    char *end;
    long v = strtol(s, &end, 10);
    return (*end == '\0' && v > 0 && v < 4096) ? (int)v : EIO;
}

__attribute__((constructor)) static void iofail_init(void)
{
    iofail_resolve();
    const char *s = getenv("IOFAIL_AFTER");
    if (s)
        fail_after = strtoul(s, NULL, 10);
    s = getenv("IOFAIL_MODE");
    fail_always = s && strcmp(s, "always") == 0;
    s = getenv("IOFAIL_OPS");
    if (s && *s) {
        ops_counted = 0;
        if (strstr(s, "write"))
            ops_counted |= IOFAIL_WRITE;
        if (strstr(s, "sync"))
            ops_counted |= IOFAIL_SYNC;
    }
    s = getenv("IOFAIL_PATH");
    if (s && *s)
        path_filter = s;
    s = getenv("IOFAIL_SKIP");
    if (s && *s)
        skip_filter = s;
    s = getenv("IOFAIL_ARM");
    if (s && *s)
        arm_path = s;
    s = getenv("IOFAIL_ERRNO");
    if (s && *s)
        fail_errno = iofail_parse_errno(s);
    s = getenv("IOFAIL_TRACE");
    trace = s && strcmp(s, "1") == 0;
    s = getenv("IOFAIL_REPORT");
    if (s && *s)
        report_fd = open(s, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void iofail_report(const char *line, size_t len)
{
    /* The real write, so the report is never counted or failed itself. */
    if (report_fd >= 0 && real_write)
        (void)real_write(report_fd, line, len);
}

__attribute__((destructor)) static void iofail_fini(void)
{
    char line[64];
    int n = snprintf(line, sizeof line, "calls %lu\n", atomic_load(&calls));
    if (n > 0)
        iofail_report(line, (size_t)n);
}

/* 1 when this call must fail (errno is then set), 0 to pass it through. */
static int iofail_should_fail(int fd, enum iofail_op op, const char *name)
{
    if (!(ops_counted & op) || fd == report_fd)
        return 0;
    char link[PATH_MAX] = "";
    if (path_filter || skip_filter || report_fd >= 0) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, link, sizeof link - 1);
        link[n > 0 ? n : 0] = '\0';
        if (path_filter && !strstr(link, path_filter))
            return 0;
        if (skip_filter && strstr(link, skip_filter))
            return 0;
    }
    if (arm_path && !atomic_load(&armed)) {
        if (access(arm_path, F_OK) != 0)
            return 0;
        atomic_store(&armed, 1);
    }
    unsigned long n = atomic_fetch_add(&calls, 1) + 1;
    char line[PATH_MAX + 64];
    int len;
    if (trace) {
        len = snprintf(line, sizeof line, "call %s %s %lu\n", name, link, n);
        if (len > 0)
            iofail_report(line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
    }
    if (fail_after == 0 || n < fail_after || (n > fail_after && !fail_always))
        return 0;
    len = snprintf(line, sizeof line, "fail %s %s %lu\n", name, link, n);
    if (len > 0)
        iofail_report(line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
    errno = fail_errno;
    return 1;
}

ssize_t write(int fd, const void *buf, size_t count)
{
    if (!real_write)
        iofail_resolve();
    if (iofail_should_fail(fd, IOFAIL_WRITE, "write"))
        return -1;
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    if (!real_pwrite)
        iofail_resolve();
    if (iofail_should_fail(fd, IOFAIL_WRITE, "pwrite"))
        return -1;
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset)
{
    if (!real_pwrite64)
        iofail_resolve();
    if (iofail_should_fail(fd, IOFAIL_WRITE, "pwrite64"))
        return -1;
    return real_pwrite64(fd, buf, count, offset);
}

int fsync(int fd)
{
    if (!real_fsync)
        iofail_resolve();
    if (iofail_should_fail(fd, IOFAIL_SYNC, "fsync"))
        return -1;
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    if (!real_fdatasync)
        iofail_resolve();
    if (iofail_should_fail(fd, IOFAIL_SYNC, "fdatasync"))
        return -1;
    return real_fdatasync(fd);
}
