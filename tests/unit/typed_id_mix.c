/* Compile-time checks for keel/typed_id.h: built with -DMIX_CASE=N by ctest.
 * Case 0 is correct use and must compile; every other case mixes ids and
 * must fail to compile. */
#include "keel/typed_id.h"

#include <stdint.h>

KL_TYPED_ID(disk_id, uint32_t);
KL_TYPED_ID(node_id, uint32_t);

static uint32_t use_node(node_id n) { return node_id_raw(n); }

int main(void)
{
    disk_id d = disk_id_from(1);
    node_id n = node_id_from(2);
    (void)d;
    (void)n;
#if MIX_CASE == 0
    return (int)use_node(n) - 2;
#elif MIX_CASE == 1
    return (int)use_node(d); /* a disk_id where a node_id is expected */
#elif MIX_CASE == 2
    node_id sum = d + n; /* adding two different id types */
    return (int)node_id_raw(sum);
#elif MIX_CASE == 3
    n = d; /* assigning across id types */
    return 0;
#elif MIX_CASE == 4
    uint32_t raw = d; /* implicit conversion to the raw integer */
    return (int)raw;
#endif
}
