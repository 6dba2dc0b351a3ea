/* keel/trace.h: an optional trace of function calls, for post-mortems.
 *
 * Built with -DKEEL_TRACE=ON, keel is compiled with -finstrument-functions:
 * every function entry and exit is recorded (function, call site, TSC) in a
 * ring of the last KL_TRACE_RING calls per thread, and the ring of the
 * thread that crashes is printed on a fatal signal or panic, oldest first,
 * with symbol names. Functions marked KL_NOTRACE are left out: the clock, the
 * crash path, tiny hot helpers. Without the option the hooks are never
 * called and cost nothing.
 */
#ifndef KEEL_TRACE_H
#define KEEL_TRACE_H

#include <stdbool.h>

#include "keel/assert.h" /* KL_NOTRACE */

#define KL_TRACE_RING 1024 /* calls kept per thread */

/* Print the calling thread's trace ring to stderr (async-signal-safe). */
void kl_trace_dump(void);

/* Start tracing: installs the crash hook that prints the ring. Idempotent. */
void kl_trace_install(void);

/* True when this process recorded any call (it was built instrumented). */
bool kl_trace_active(void);

#endif /* KEEL_TRACE_H */
