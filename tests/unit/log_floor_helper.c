/* Built with -DKL_LOG_FLOOR=KL_LEVEL_ERROR for test_log.c: the calls below
 * the floor must compile to nothing. */
#include "keel/log.h"

void log_below_floor(void);
void log_below_floor(void)
{
    KL_DEBUG("compiled out %d", 1);
    KL_INFO("compiled out %d", 2);
    KL_WARN("compiled out %d", 3);
    KL_ERROR("kept %d", 4);
}
