/* core/clock: the monotonic clock never goes back and measures a sleep; the
 * wall clock is ms since the epoch (agrees with time()); a day is 86400000 ms,
 * and a time's UTC day rounds down, before 1970 too. */
#include "core/clock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

static void mono_never_goes_back_and_measures_a_sleep(void **state)
{
    (void)state;
    int64_t prev = fs_mono_ms();
    for (int i = 0; i < 100000; i++) {
        int64_t t = fs_mono_ms();
        assert_true(t >= prev);
        prev = t;
    }
    int64_t t0 = fs_mono_ms();
    struct timespec nap = {0, 50 * 1000 * 1000};
    nanosleep(&nap, NULL);
    int64_t dt = fs_mono_ms() - t0;
    assert_true(dt >= 50);
    assert_true(dt < 5000);
}

static void wall_is_ms_since_the_epoch(void **state)
{
    (void)state;
    int64_t before = (int64_t)time(NULL) * 1000;
    int64_t w = fs_wall_ms();
    int64_t after = (int64_t)time(NULL) * 1000 + 1000;
    assert_true(w >= before);
    assert_true(w < after);
    assert_true(w > 1700000000000LL); /* ms, not s or us */
}

static void a_day_in_ms(void **state)
{
    (void)state;
    assert_true(FS_DAY_MS == 86400000LL);
    assert_true(sizeof(FS_DAY_MS) == sizeof(long long)); /* 30 * FS_DAY_MS does not overflow */
}

static void days_round_down_also_before_1970(void **state)
{
    (void)state;
    const int64_t d = 1795737600000LL; /* 2026-11-27T00:00:00Z */
    assert_true(fs_day_of(0) == 0);
    assert_true(fs_day_of(FS_DAY_MS - 1) == 0);
    assert_true(fs_day_of(FS_DAY_MS) == 1);
    assert_true(fs_day_of(-1) == -1);
    assert_true(fs_day_of(-FS_DAY_MS) == -1);
    assert_true(fs_day_of(-FS_DAY_MS - 1) == -2);
    assert_true(fs_day_of(d) == 20784);
    assert_true(fs_day_start_ms(d) == d);
    assert_true(fs_day_start_ms(d + 1) == d);
    assert_true(fs_day_start_ms(d + FS_DAY_MS - 1) == d);
    assert_true(fs_day_start_ms(d + FS_DAY_MS) == d + FS_DAY_MS);
    assert_true(fs_day_start_ms(-1) == -FS_DAY_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mono_never_goes_back_and_measures_a_sleep),
        cmocka_unit_test(wall_is_ms_since_the_epoch),
        cmocka_unit_test(a_day_in_ms),
        cmocka_unit_test(days_round_down_also_before_1970),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
