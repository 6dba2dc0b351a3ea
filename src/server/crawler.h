/* crawler.h: memcached's `lru_crawler` command on keel's engines.
 *
 * `lru_crawler metadump all|hash|<class ids>` lists the engine's live items
 * in memcached's line format (for `memcached-tool dump` and `keys`); crawl,
 * sleep, tocrawl, enable and disable are answered as memcached answers them.
 * Both engines dump: the seg engine from memory, the disk engine by reading
 * each live record (its index holds no keys).
 */
#ifndef KEELD_CRAWLER_H
#define KEELD_CRAWLER_H

#include "exec.h"

/* Run one lru_crawler command (cmd->arg: its words) and queue the reply. */
int keeld_lru_crawler(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd);

#endif
