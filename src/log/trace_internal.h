/* trace_internal.h: what the trace hooks (trace_hooks.c) call in trace.c. */
#ifndef KEEL_LOG_TRACE_INTERNAL_H
#define KEEL_LOG_TRACE_INTERNAL_H

#include <stdint.h>

#include "keel/assert.h" /* KL_NOTRACE */

#pragma GCC visibility push(hidden)

/* Record one call event (enter 1, exit 0) in the calling thread's ring. */
void trace_record(void *fn, void *site, uint64_t enter) KL_NOTRACE;

#pragma GCC visibility pop

#endif /* KEEL_LOG_TRACE_INTERNAL_H */
