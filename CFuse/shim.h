#ifndef MDEVSIM_CFUSE_SHIM_H
#define MDEVSIM_CFUSE_SHIM_H
// FUSE_USE_VERSION must precede the include; 312 gives the fuse_loop_config API
// and the `unsigned int cmd` ioctl signature.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/mount.h>

// fuse_args has only a function-like macro initialiser, which Swift cannot import.
static inline struct fuse_args mdevsim_fuse_args(int argc, char **argv) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return args;
}
#endif
