// A malloc counter to preload into a test run, for allocation counts of in-memory tests without the
// release-built GatewayBenchmarks (package-benchmark's jemalloc counters):
//   cc -O2 -shared -fPIC -o /tmp/malloc-count.so scripts/malloc-count.c
//   LD_PRELOAD=/tmp/malloc-count.so swift test --skip-build --filter <one test>
// A test finds `wsgate_malloc_count` with dlsym and reads it around the code it measures (see
// HTTP2ConnectionMemoryTests). Counts every malloc, calloc, realloc and aligned allocation of the process.
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static _Atomic long count;

long wsgate_malloc_count(void) { return atomic_load(&count); }

void *malloc(size_t size) {
    atomic_fetch_add(&count, 1);
    return __libc_malloc(size);
}

void *calloc(size_t number, size_t size) {
    atomic_fetch_add(&count, 1);
    return __libc_calloc(number, size);
}

void *realloc(void *pointer, size_t size) {
    atomic_fetch_add(&count, 1);
    return __libc_realloc(pointer, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    atomic_fetch_add(&count, 1);
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    atomic_fetch_add(&count, 1);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    atomic_fetch_add(&count, 1);
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *result = pointer;
    return 0;
}
