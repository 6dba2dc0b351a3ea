/* keeld: the memcached-compatible cache server (see src/server/server.h).
 * This file is only the command line: parse, answer -h and -V, run. */
#include <stdio.h>
#include <unistd.h>

#include "options.h"
#include "server.h"
#include "stats.h"

int main(int argc, char **argv)
{
    struct keeld_options opts;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    keeld_options_defaults(&opts, cores > 0 ? (unsigned)cores : 1);
    char err[512];
    switch (keeld_options_parse(&opts, argc, argv, err, sizeof err)) {
    case KEELD_HELP: fputs(keeld_usage(), stdout); return 0;
    case KEELD_VERSION: printf("keeld %s\n", KEELD_VERSION_STRING); return 0;
    case KEELD_BAD: fprintf(stderr, "keeld: %s (see keeld -h)\n", err); return 2;
    case KEELD_RUN: break;
    }
    return keeld_run(&opts);
}
