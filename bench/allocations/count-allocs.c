// LD_PRELOAD allocation counter for bench/allocations.sh (Linux, glibc).
//
//   cc -O2 -shared -fPIC -o count-allocs.so count-allocs.c
//   ALLOC_COUNT_DIR=/tmp/dir LD_PRELOAD=$PWD/count-allocs.so program ...
//
// Every process that loads it (and every child it forks, or execs with the same environment)
// counts its calls of malloc, calloc, realloc (and reallocarray), posix_memalign, aligned_alloc,
// memalign, valloc (and pvalloc) and free (of non-NULL pointers), plus the bytes requested, into
// a file ALLOC_COUNT_DIR/<pid> that it maps shared, so another process (the benchmark script)
// reads the counts while the program runs. Layout: little-endian uint64 words, [0] the magic
// 0x414c4c4f43434e54 ("ALLOCCNT"), [1] the pid, then the counters in the order of `enum counter`.
//
// Why not ordo-one's malloc-interposer (which can be LD_PRELOADed too): it counts only between
// malloc_interposer_enable() and _disable() called inside the measured process and hands the
// totals to the same process (malloc_interposer_get_stats()); the gateway would have to link it
// and call it, a change to its Package.swift and sources. This file counts from the first call
// and publishes the counts to another process, and nothing in the gateway changes.
//
// The real allocator is reached through glibc's __libc_malloc & co., not dlsym(RTLD_NEXT, ...):
// dlsym can itself allocate, which would recurse into these functions before they know where
// to go. Nothing here allocates; the counters are relaxed atomic adds (the worker has several
// threads).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

enum counter {
    COUNT_MALLOC, COUNT_CALLOC, COUNT_REALLOC, COUNT_POSIX_MEMALIGN, COUNT_ALIGNED_ALLOC,
    COUNT_MEMALIGN, COUNT_VALLOC, COUNT_FREE, COUNT_BYTES, COUNTERS
};
#define MAGIC 0x414c4c4f43434e54ULL
#define FILE_BYTES 4096

// Until the file is mapped (calls made by the dynamic loader and other libraries' constructors
// before ours) counts go here and are carried into the file.
static uint64_t early[COUNTERS];
static uint64_t *counters = early;

static inline void count(enum counter which, uint64_t bytes) {
    __atomic_fetch_add(&counters[which], 1, __ATOMIC_RELAXED);
    if (bytes) __atomic_fetch_add(&counters[COUNT_BYTES], bytes, __ATOMIC_RELAXED);
}

static void map_counters(void) {
    const char *dir = getenv("ALLOC_COUNT_DIR");
    if (dir == NULL || *dir == '\0') return;
    char path[4096];
    int length = snprintf(path, sizeof path, "%s/%ld", dir, (long)getpid());
    if (length <= 0 || (size_t)length >= sizeof path) return;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (ftruncate(fd, FILE_BYTES) != 0) { close(fd); return; }
    uint64_t *shared = mmap(NULL, FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (shared == MAP_FAILED) return;
    uint64_t *fresh = shared + 2;
    for (int i = 0; i < COUNTERS; i++) fresh[i] = __atomic_load_n(&counters[i], __ATOMIC_RELAXED);
    shared[1] = (uint64_t)getpid();
    __atomic_store_n(&shared[0], MAGIC, __ATOMIC_RELEASE);
    __atomic_store_n(&counters, fresh, __ATOMIC_RELEASE);
}

// A forked child (nginx's worker) counts into a file of its own, from zero. The child of
// fork() runs this before returning; posix_spawn/vfork children exec before allocating.
static void after_fork_in_child(void) {
    memset(early, 0, sizeof early);
    counters = early;
    map_counters();
}

__attribute__((constructor)) static void start_counting(void) {
    map_counters();
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

void *malloc(size_t size) {
    count(COUNT_MALLOC, size);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    count(COUNT_CALLOC, n * size);
    return __libc_calloc(n, size);
}

void *realloc(void *pointer, size_t size) {
    count(COUNT_REALLOC, size);
    return __libc_realloc(pointer, size);
}

void *reallocarray(void *pointer, size_t n, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes)) { errno = ENOMEM; return NULL; }
    return realloc(pointer, bytes);
}

void free(void *pointer) {
    if (pointer == NULL) return;
    count(COUNT_FREE, 0);
    __libc_free(pointer);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count(COUNT_POSIX_MEMALIGN, size);
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *result = pointer;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) { errno = EINVAL; return NULL; }
    count(COUNT_ALIGNED_ALLOC, size);
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    count(COUNT_MEMALIGN, size);
    return __libc_memalign(alignment, size);
}

void *valloc(size_t size) {
    count(COUNT_VALLOC, size);
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    count(COUNT_VALLOC, size);
    return __libc_pvalloc(size);
}
