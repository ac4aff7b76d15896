/* core/jsonesc: quote and backslash escaped, control bytes as \u00XX or
 * (JSONESC_SHORT) their short forms, other bytes kept or (JSONESC_ASCII)
 * replaced by \ufffd; a cut keeps whole escapes and whole UTF-8 characters;
 * a bounded buffer drops an over-long string as a whole. */
#include "core/jsonesc.h"

#include "core/buf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static const char *esc(const char *s, size_t n, int flags, struct buf *b)
{
    buf_reset(b);
    jsonesc_buf(b, s, n, flags);
    assert_int_equal(b->oom, 0);
    return b->p;
}

static void quote_backslash_and_controls_as_unicode(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_string_equal(esc("a\"b\\c\n\x01\x1f/\x7f", 10, 0, &b), "\"a\\\"b\\\\c\\u000a\\u0001\\u001f/\x7f\"");
    assert_string_equal(esc("", 0, 0, &b), "\"\"");
    assert_string_equal(esc("a\0b", 3, 0, &b), "\"a\\u0000b\""); /* n bytes, NULs included */
    buf_release(&b);
}

static void short_forms_for_the_five(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_string_equal(esc("\b\f\n\r\t\x0b\"", 7, JSONESC_SHORT, &b), "\"\\b\\f\\n\\r\\t\\u000b\\\"\"");
    buf_release(&b);
}

static void utf8_kept_or_replaced_in_ascii_mode(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_string_equal(esc("\xc3\xa9", 2, 0, &b), "\"\xc3\xa9\"");
    assert_string_equal(esc("\xc3\xa9\x7f\n", 4, JSONESC_ASCII, &b), "\"\\ufffd\\ufffd\\ufffd\\u000a\"");
    assert_string_equal(esc("\n", 1, JSONESC_ASCII | JSONESC_SHORT, &b), "\"\\n\"");
    buf_release(&b);
}

static void every_byte_has_one_rule(void **state)
{
    (void)state;
    char e[JSONESC_MAX];
    for (int c = 0; c < 256; c++) {
        size_t k = jsonesc_byte((unsigned char)c, 0, e);
        if (c == '"' || c == '\\')
            assert_int_equal(k, 2);
        else if (c < 0x20)
            assert_int_equal(k, 6);
        else
            assert_int_equal(k, 0);
        size_t a = jsonesc_byte((unsigned char)c, JSONESC_ASCII, e);
        assert_int_equal(a, c >= 0x7f ? 6 : k);
    }
    char plain[] = "TRK-000001 abc";
    assert_int_equal(jsonesc_plain(plain, strlen(plain), 0), strlen(plain));
    assert_int_equal(jsonesc_plain("ab\"c", 4, 0), 2);
}

static void cut_keeps_whole_escapes_and_characters(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(jsonesc_cut(out, 31, "depot \"A\"", 0), 11);
    assert_string_equal(out, "depot \\\"A\\\"");
    /* "ab" + \u0001 needs 8 bytes: with 7 the control byte is left out whole */
    assert_int_equal(jsonesc_cut(out, 7, "ab\x01", 0), 2);
    assert_string_equal(out, "ab");
    /* a 2-byte character that does not fit is left out whole, not split */
    assert_int_equal(jsonesc_cut(out, 4, "abc\xc3\xa9", 0), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(jsonesc_cut(out, 5, "abc\xc3\xa9", 0), 5);
    assert_string_equal(out, "abc\xc3\xa9");
    assert_int_equal(jsonesc_cut(out, 0, "x", 0), 0);
    assert_string_equal(out, "");
}

static void bounded_buffer_drops_what_does_not_fit(void **state)
{
    (void)state;
    struct buf b = {.max = 8};
    jsonesc_buf(&b, "abcdefghij", 10, 0);
    assert_int_equal(b.oom, 1);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quote_backslash_and_controls_as_unicode),
        cmocka_unit_test(short_forms_for_the_five),
        cmocka_unit_test(utf8_kept_or_replaced_in_ascii_mode),
        cmocka_unit_test(every_byte_has_one_rule),
        cmocka_unit_test(cut_keeps_whole_escapes_and_characters),
        cmocka_unit_test(bounded_buffer_drops_what_does_not_fit),
    };
    return cmocka_run_group_tests_name("jsonesc", tests, NULL, NULL);
}
