/*
 * policy.c - notify's delivery decisions (see policy.h).
 */
#include "notify/policy.h"

enum notify_verdict notify_verdict_of(long http_status)
{
    if (http_status >= 200 && http_status <= 299)
        return NOTIFY_DELIVERED;
    if (http_status == 0 || http_status == 408 || http_status == 429 || (http_status >= 500 && http_status <= 599))
        return NOTIFY_RETRY;
    return NOTIFY_PERMANENT;
}

int64_t notify_backoff_ms(int base_ms, int max_ms, int attempt, uint32_t rnd)
{
    if (base_ms < 1)
        base_ms = 1;
    if (max_ms < base_ms)
        max_ms = base_ms;
    if (attempt < 1)
        attempt = 1;
    int64_t d = base_ms;
    for (int i = 1; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    int64_t half = d / 2;
    return (d - half) + (int64_t)(rnd % (uint64_t)(half + 1));
}

int notify_queue_admits(size_t depth, size_t bound)
{
    return depth < bound;
}

int notify_may_retry(int64_t first_ms, int64_t now_ms, int64_t retry_for_ms)
{
    return now_ms - first_ms < retry_for_ms;
}
