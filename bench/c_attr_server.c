/* Minimal C libfuse low-level server: the baseline for mdevsim's benchmarks.
 *
 * It serves one attribute at the end of a chain of directories given on the
 * command line (so a client walks the same number of path components as on an
 * mdevsim mount), with the semantics mdevsim uses: direct I/O, zero entry and
 * attribute timeouts, st_size 4096.
 *
 *   c_attr_server MOUNTPOINT PATH CONTENT [-s]
 *   e.g. c_attr_server /mnt sys/devices/x/available_instances '5\n' -s
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

static void fill(fuse_ino_t ino, struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    if ((int)ino == depth + 1) {
        st->st_mode = S_IFREG | 0444;
        st->st_size = 4096;
        st->st_nlink = 1;
    } else {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    }
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    if ((int)parent > depth || strcmp(names[parent - 1], name) != 0) { fuse_reply_err(req, ENOENT); return; }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = parent + 1;
    fill(e.ino, &e.attr);
    fuse_reply_entry(req, &e);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)fi;
    if ((int)ino > depth + 1) { fuse_reply_err(req, ENOENT); return; }
    struct stat st;
    fill(ino, &st);
    fuse_reply_attr(req, &st, 0);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if ((int)ino != depth + 1) { fuse_reply_err(req, EISDIR); return; }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) { fuse_reply_err(req, EACCES); return; }
    fi->direct_io = 1;
    fuse_reply_open(req, fi);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)ino; (void)fi;
    size_t len = strlen(content);
    if ((size_t)off >= len) { fuse_reply_buf(req, NULL, 0); return; }
    if (size > len - off) size = len - off;
    fuse_reply_buf(req, content + off, size);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = ll_lookup, .getattr = ll_getattr, .open = ll_open, .read = ll_read,
};

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s MOUNTPOINT PATH CONTENT [-s]\n", argv[0]); return 2; }
    char *path = strdup(argv[2]);
    for (char *tok = strtok(path, "/"); tok && depth < MAX_DEPTH; tok = strtok(NULL, "/")) names[depth++] = tok;
    static char buf[4096];
    size_t n = 0;
    for (const char *s = argv[3]; *s && n < sizeof buf - 1; s++) {
        if (s[0] == '\\' && s[1] == 'n') { buf[n++] = '\n'; s++; } else buf[n++] = *s;
    }
    content = buf;
    int single = argc > 4 && strcmp(argv[4], "-s") == 0;

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
