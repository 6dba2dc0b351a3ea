/* Fiber groups: fibers closed together (keel/fiber.h).
 *
 * A group is a caller-owned list of member fibers, linked through a node in
 * each fiber, so membership costs no allocation. A member leaves the list
 * when it ends; closing cancels every member and waits (suspended, or running
 * the scheduler on the main context) until the list is empty. Membership and
 * joinability are independent: closing a group does not consume results.
 */
#include "keel/fiber.h"

#include <errno.h>

#include "fiber_internal.h"

void kl_fiber_group_init(struct kl_fiber_group *group, const char *name)
{
    kl_list_init(&group->members);
    group->name = name ? name : "group";
    group->closer = NULL;
    group->closed = false;
}

int kl_fiber_group_add(struct kl_fiber_group *group, kl_fiber_id id)
{
    struct kl_sched *s = kl_sched__get();
    struct kl_fiber *f = kl_sched__lookup(s, id);
    if (f == NULL || f->state == KL_FIBER_DONE)
        return -ESRCH;
    if (group->closed)
        return -ESHUTDOWN;
    if (f->group)
        return -EBUSY;
    f->group = group;
    kl_list_push_back(&group->members, &f->group_node);
    return 0;
}

void kl_fiber_group__leave(struct kl_fiber *f)
{
    struct kl_fiber_group *group = f->group;
    KL_ASSERT(f->state == KL_FIBER_DONE, "fiber %s leaves group %s while %s", f->name, group->name,
              kl_fiber__state_name(f->state));
    kl_list_remove(&group->members, &f->group_node);
    f->group = NULL;
    struct kl_fiber *closer = group->closer;
    if (closer && kl_list_empty(&group->members) && closer != &f->sched->main &&
        closer->state == KL_FIBER_SUSPENDED)
        kl_sched__wake(f->sched, closer, 0);
}

static bool group_empty(void *arg)
{
    return kl_list_empty(&((struct kl_fiber_group *)arg)->members);
}

int kl_fiber_group_close(struct kl_fiber_group *group)
{
    struct kl_sched *s = kl_sched__get();
    struct kl_fiber *cur = s->current;
    if (group->closer)
        return -EBUSY;
    group->closed = true;
    if (cur->group == group)
        return -EDEADLK;
    kl_list_for_each (it, &group->members)
        kl_fiber_cancel(kl_fiber__id(kl_container_of(it, struct kl_fiber, group_node)));
    if (group_empty(group))
        return 0;
    group->closer = cur;
    int rc = 0;
    if (cur == &s->main) {
        rc = kl_sched__run_until(s, group_empty, group);
    } else {
        while (!group_empty(group)) {
            rc = kl_fiber__suspend(s, "group close", group->name, KL_FIBER_FOREVER);
            if (rc == -ECANCELED)
                break;
            rc = 0;
        }
    }
    group->closer = NULL;
    return group_empty(group) ? 0 : rc;
}
