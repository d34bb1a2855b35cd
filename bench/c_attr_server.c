/* Minimal C libfuse low-level server: the baseline for mdevsim's benchmarks.
 *
 * It serves one attribute at the end of a chain of directories given on the
 * command line (so a client walks the same number of path components as on an
 * mdevsim mount), with the semantics mdevsim uses: direct I/O, zero entry and
 * attribute timeouts, st_size 4096. Beside it, at the root:
 *   bar0  a 2 MiB register file: pread/pwrite of any width at any offset
 *   big   an in-memory file of BIG_MIB MiB (default 0): sequential reads and writes
 *
 *   c_attr_server MOUNTPOINT PATH CONTENT [-s] [BIG_MIB]
 *   e.g. c_attr_server /mnt sys/devices/x/available_instances '5\n' -s 320
 */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DEPTH 32
static char *names[MAX_DEPTH];   /* names[i] is the child of inode i+1 */
static int depth;                /* number of path components; leaf inode = depth+1 */
static const char *content;
#define BAR0_SIZE (2u << 20)
static unsigned char *bar0;
static unsigned char *big;
static size_t big_size;
/* Root-level files: their inodes follow the chain's leaf. */
#define INO_BAR0 ((fuse_ino_t)depth + 2)
#define INO_BIG ((fuse_ino_t)depth + 3)

static void fill(fuse_ino_t ino, struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    if (ino == INO_BAR0 || ino == INO_BIG) {
        st->st_mode = S_IFREG | 0600;
        st->st_size = ino == INO_BAR0 ? BAR0_SIZE : big_size;
        st->st_nlink = 1;
    } else if ((int)ino == depth + 1) {
        st->st_mode = S_IFREG | 0444;
        st->st_size = 4096;
        st->st_nlink = 1;
    } else {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    }
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    if (parent == 1 && (strcmp(name, "bar0") == 0 || strcmp(name, "big") == 0)) {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.ino = name[1] == 'a' ? INO_BAR0 : INO_BIG;
        fill(e.ino, &e.attr);
        fuse_reply_entry(req, &e);
        return;
    }
    if ((int)parent > depth || strcmp(names[parent - 1], name) != 0) { fuse_reply_err(req, ENOENT); return; }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = parent + 1;
    fill(e.ino, &e.attr);
    fuse_reply_entry(req, &e);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)fi;
    if (ino > INO_BIG) { fuse_reply_err(req, ENOENT); return; }
    struct stat st;
    fill(ino, &st);
    fuse_reply_attr(req, &st, 0);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (ino == INO_BAR0 || ino == INO_BIG) {
        fi->direct_io = 1;
        fuse_reply_open(req, fi);
        return;
    }
    if ((int)ino != depth + 1) { fuse_reply_err(req, EISDIR); return; }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) { fuse_reply_err(req, EACCES); return; }
    fi->direct_io = 1;
    fuse_reply_open(req, fi);
}

/* The file's bytes for a read or write of SIZE at OFF, clipped to its end. */
static unsigned char *span(fuse_ino_t ino, off_t off, size_t *size) {
    unsigned char *base = ino == INO_BAR0 ? bar0 : big;
    size_t len = ino == INO_BAR0 ? BAR0_SIZE : big_size;
    if ((size_t)off >= len) { *size = 0; return base; }
    if (*size > len - off) *size = len - off;
    return base + off;
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)fi;
    if (ino != INO_BAR0 && ino != INO_BIG) { fuse_reply_err(req, EACCES); return; }
    unsigned char *p = span(ino, off, &size);
    if (size == 0) { fuse_reply_err(req, ENOSPC); return; }
    memcpy(p, buf, size);
    fuse_reply_write(req, size);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
    (void)attr; (void)to_set; (void)fi;
    struct stat st;
    fill(ino, &st);
    fuse_reply_attr(req, &st, 0);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)fi;
    if (ino == INO_BAR0 || ino == INO_BIG) {
        unsigned char *p = span(ino, off, &size);
        fuse_reply_buf(req, (const char *)p, size);
        return;
    }
    size_t len = strlen(content);
    if ((size_t)off >= len) { fuse_reply_buf(req, NULL, 0); return; }
    if (size > len - off) size = len - off;
    fuse_reply_buf(req, content + off, size);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = ll_lookup, .getattr = ll_getattr, .open = ll_open, .read = ll_read,
    .write = ll_write, .setattr = ll_setattr,
};

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s MOUNTPOINT PATH CONTENT [-s] [BIG_MIB]\n", argv[0]); return 2; }
    char *path = strdup(argv[2]);
    for (char *tok = strtok(path, "/"); tok && depth < MAX_DEPTH; tok = strtok(NULL, "/")) names[depth++] = tok;
    static char buf[4096];
    size_t n = 0;
    for (const char *s = argv[3]; *s && n < sizeof buf - 1; s++) {
        if (s[0] == '\\' && s[1] == 'n') { buf[n++] = '\n'; s++; } else buf[n++] = *s;
    }
    content = buf;
    int single = argc > 4 && strcmp(argv[4], "-s") == 0;
    big_size = (size_t)(argc > 5 ? atoi(argv[5]) : 0) << 20;
    bar0 = calloc(1, BAR0_SIZE);
    big = big_size ? malloc(big_size) : NULL;
    if (!bar0 || (big_size && !big)) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t i = 0; i < big_size; i += 4096) big[i] = (unsigned char)i; /* resident, like mdevsim's pages */

    char *fargv[] = { argv[0], "-o", "fsname=cbaseline,default_permissions", NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!se || fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[1]) != 0) return 1;
    int rc;
    if (single) {
        rc = fuse_session_loop(se);
    } else {
        struct fuse_loop_config *cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_max_threads(cfg, 10);
        rc = fuse_session_loop_mt(se, cfg);
        fuse_loop_cfg_destroy(cfg);
    }
    fuse_remove_signal_handlers(se);
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    return rc ? 1 : 0;
}
