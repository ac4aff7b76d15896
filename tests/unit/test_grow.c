/* core/grow: doubling arrays. */
#include "core/grow.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

struct item {
    int64_t id;
    char name[24];
};

static void grows_from_first_cap_by_doubling_and_keeps_elements(void **state)
{
    (void)state;
    struct item *v = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(grow_one(&v, &cap, n, sizeof(*v), 4), 0);
        assert_true(n < cap);
        v[n++] = (struct item){.id = i};
    }
    assert_int_equal(cap, 128); /* 4, 8, 16, 32, 64, 128 */
    for (int i = 0; i < 100; i++)
        assert_int_equal(v[i].id, i);
    free(v);
}

static void room_left_changes_nothing(void **state)
{
    (void)state;
    int *v = malloc(8 * sizeof(*v));
    int *before = v;
    size_t cap = 8;
    assert_int_equal(grow_one(&v, &cap, 7, sizeof(*v), 2), 0);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 8);
    free(v);
}

static void a_size_past_memory_fails_and_keeps_the_array(void **state)
{
    (void)state;
    char *v = malloc(4);
    char *before = v;
    size_t cap = SIZE_MAX / 2 + 1; /* doubling wraps */
    assert_int_equal(grow_one(&v, &cap, cap, 1, 16), -1);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, SIZE_MAX / 2 + 1);
    cap = SIZE_MAX / 16; /* twice that in 16-byte elements overflows */
    assert_int_equal(grow_one(&v, &cap, cap, 16, 16), -1);
    assert_ptr_equal(v, before);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows_from_first_cap_by_doubling_and_keeps_elements),
        cmocka_unit_test(room_left_changes_nothing),
        cmocka_unit_test(a_size_past_memory_fails_and_keeps_the_array),
    };
    return cmocka_run_group_tests_name("grow", tests, NULL, NULL);
}
