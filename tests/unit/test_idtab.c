/* core/idtab: records keyed by truck id survive growth, ids are copied,
 * iteration sees every record once. */
#include "core/idtab.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

struct rec {
    char *id;
    int value;
};

static void records_survive_growth(void **state)
{
    (void)state;
    struct idtab t;
    idtab_init(&t, sizeof(struct rec));
    char id[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(id, sizeof(id), "TRK-%06d", i);
        struct rec *r = idtab_get(&t, id, (size_t)n);
        assert_non_null(r);
        assert_int_equal(r->value, 0); /* a new record is zeroed */
        assert_string_equal(r->id, id);
        assert_ptr_not_equal(r->id, id); /* the table's own copy */
        r->value = i + 1;
    }
    assert_int_equal(t.count, 10000);
    assert_true(t.count * 10 < t.cap * 7);
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(id, sizeof(id), "TRK-%06d", i);
        struct rec *r = idtab_get(&t, id, (size_t)n);
        assert_int_equal(r->value, i + 1);
    }
    assert_int_equal(t.count, 10000); /* lookups add nothing */
    size_t seen = 0;
    long sum = 0;
    for (size_t i = 0; i < t.cap; i++) {
        struct rec *r = idtab_slot(&t, i);
        if (r) {
            seen++;
            sum += r->value;
        }
    }
    assert_int_equal(seen, 10000);
    assert_int_equal(sum, 10000L * 10001 / 2);
    idtab_release(&t);
    assert_int_equal(t.count, 0);
    assert_int_equal(t.cap, 0);
    assert_non_null(idtab_get(&t, "again", 5)); /* usable after release */
    idtab_release(&t);
}

static void prefix_ids_are_distinct(void **state)
{
    (void)state;
    struct idtab t;
    idtab_init(&t, sizeof(struct rec));
    struct rec *a = idtab_get(&t, "TRK-1", 5);
    a->value = 1;
    struct rec *b = idtab_get(&t, "TRK-10", 6);
    b->value = 2;
    assert_ptr_not_equal(a, b);
    assert_int_equal(((struct rec *)idtab_get(&t, "TRK-10X", 6))->value, 2); /* length counts, not a NUL */
    assert_int_equal(((struct rec *)idtab_get(&t, "TRK-1", 5))->value, 1);
    assert_int_equal(t.count, 2);
    /* a reserve for a batch keeps pointers still while the batch is added */
    assert_int_equal(idtab_reserve(&t, 5000), 0);
    struct rec *keep = idtab_get(&t, "TRK-1", 5);
    char id[16];
    for (int i = 0; i < 5000; i++)
        idtab_get(&t, id, (size_t)snprintf(id, sizeof(id), "B%d", i));
    assert_ptr_equal(idtab_get(&t, "TRK-1", 5), keep);
    idtab_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(records_survive_growth),
        cmocka_unit_test(prefix_ids_are_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
