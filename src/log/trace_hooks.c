/* The -finstrument-functions hooks, which feed the trace ring (trace.c).
 *
 * Built into libkeel only with KEEL_TRACE=ON: a program built with
 * -finstrument-functions against an ordinary libkeel brings hooks of its
 * own. tests/ links this file into test_trace, which is always instrumented.
 */
#include "trace_internal.h"

void __cyg_profile_func_enter(void *fn, void *site) KL_NOTRACE;
void __cyg_profile_func_exit(void *fn, void *site) KL_NOTRACE;

void __cyg_profile_func_enter(void *fn, void *site) { trace_record(fn, site, 1); }

void __cyg_profile_func_exit(void *fn, void *site) { trace_record(fn, site, 0); }
