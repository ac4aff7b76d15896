/*
 * table.c - see table.h.  The text table measures its columns in UTF-8
 * characters (continuation bytes take no column); JSON and CSV carry the
 * values as stored, escaped for their format.
 */
#include "core/table.h"

#include "core/csv.h"
#include "core/grow.h"
#include "core/jsonesc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- formats ------------------------------------------------------------- */

char *table_format_time(int64_t ms, char *buf, size_t size)
{
    int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int frac = (int)(ms - s * 1000);
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (frac)
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    else
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
    return buf;
}

char *table_format_duration(double seconds, char *buf, size_t size)
{
    if (!isfinite(seconds)) {
        snprintf(buf, size, "-");
        return buf;
    }
    long long s = llround(seconds < 0 ? 0 : seconds);
    if (s >= 3600)
        snprintf(buf, size, "%lldh %02lldm %02llds", s / 3600, s / 60 % 60, s % 60);
    else if (s >= 60)
        snprintf(buf, size, "%lldm %02llds", s / 60, s % 60);
    else
        snprintf(buf, size, "%llds", s);
    return buf;
}

char *table_format_number(double v, int decimals, char *buf, size_t size)
{
    if (!isfinite(v)) {
        snprintf(buf, size, "%s", "");
        return buf;
    }
    if (fabs(v) < 0.5 * pow(10, -decimals))
        v = 0;
    snprintf(buf, size, "%.*f", decimals, v);
    return buf;
}

static void put_file(void *ud, const char *p, size_t len)
{
    fwrite(p, 1, len, ud);
}

void table_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    jsonesc_write(s, strlen(s), JSONESC_SHORT, put_file, out);
    fputc('"', out);
}

/* ---- cells --------------------------------------------------------------- */

void table_init(struct table *t, const struct table_col *cols, size_t ncols)
{
    memset(t, 0, sizeof(*t));
    t->cols = cols;
    t->ncols = ncols;
    t->gap = "  ";
}

void table_release(struct table *t)
{
    for (size_t i = 0; i < t->count; i++) {
        free(t->cells[i].text);
        free(t->cells[i].value);
    }
    free(t->cells);
    t->cells = NULL;
    t->count = t->cap = 0;
}

size_t table_rows(const struct table *t)
{
    return t->ncols ? t->count / t->ncols : 0;
}

/* Appends a cell; takes copies of text and value (value may be NULL). */
static void add(struct table *t, const char *text, const char *value, int raw, enum table_cell_kind kind)
{
    if (t->oom)
        return;
    if (grow_one(&t->cells, &t->cap, t->count, sizeof(*t->cells), 64) != 0) {
        t->oom = 1;
        return;
    }
    struct table_cell *c = &t->cells[t->count];
    c->text = strdup(text);
    c->value = value ? strdup(value) : NULL;
    c->raw = raw;
    c->kind = kind;
    if (!c->text || (value && !c->value)) {
        free(c->text);
        free(c->value);
        t->oom = 1;
        return;
    }
    t->count++;
}

void table_str(struct table *t, const char *s, const char *null_text)
{
    add(t, s ? s : null_text ? null_text : "-", s, 0, TABLE_CELL);
}

void table_num(struct table *t, double v, int decimals)
{
    char buf[64];
    if (!isfinite(v)) {
        add(t, "-", NULL, 0, TABLE_CELL);
        return;
    }
    table_format_number(v, decimals, buf, sizeof(buf));
    add(t, buf, buf, 1, TABLE_CELL);
}

void table_time(struct table *t, int64_t ms)
{
    char buf[40];
    if (ms == INT64_MIN) {
        add(t, "-", NULL, 0, TABLE_CELL);
        return;
    }
    table_format_time(ms, buf, sizeof(buf));
    add(t, buf, buf, 0, TABLE_CELL);
}

void table_dur(struct table *t, double seconds)
{
    char text[64], value[64];
    if (!isfinite(seconds)) {
        add(t, "-", NULL, 0, TABLE_CELL);
        return;
    }
    table_format_duration(seconds, text, sizeof(text));
    table_format_number(seconds, 3, value, sizeof(value));
    /* Whole seconds print without decimals: "420", not "420.000". */
    char *dot = strchr(value, '.');
    if (dot) {
        char *end = value + strlen(value);
        while (end > dot + 1 && end[-1] == '0')
            *--end = '\0';
        if (end == dot + 1)
            *dot = '\0';
    }
    add(t, text, value, 1, TABLE_CELL);
}

void table_json(struct table *t, const char *json)
{
    add(t, json ? json : "-", json, 1, TABLE_CELL);
}

void table_literal(struct table *t, const char *literal)
{
    add(t, literal, literal, 1, TABLE_CELL);
}

void table_rule(struct table *t, uint64_t mask)
{
    for (size_t c = 0; c < t->ncols; c++)
        add(t, "", NULL, 0, c < 64 && (mask >> c & 1) ? TABLE_RULE_DASHES : TABLE_RULE_BLANK);
}

/* ---- printing ------------------------------------------------------------ */

static int is_rule_row(const struct table *t, size_t row)
{
    return t->cells[row * t->ncols].kind != TABLE_CELL;
}

/* Display width of s: UTF-8 continuation bytes take no column. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            w++;
    return w;
}

static void pad(FILE *out, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        fputc(' ', out);
}

static void print_text_cell(FILE *out, const char *s, size_t width, int right)
{
    size_t w = text_width(s);
    if (right)
        pad(out, w, width);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
    if (!right)
        pad(out, w, width);
}

static const char *col_title(const struct table_col *c)
{
    return c->title ? c->title : c->key;
}

static void print_text(const struct table *t, FILE *out)
{
    size_t *width = calloc(t->ncols, sizeof(*width));
    if (!width)
        return;
    for (size_t c = 0; c < t->ncols; c++)
        width[c] = t->cols[c].width > 0 ? (size_t)t->cols[c].width : text_width(col_title(&t->cols[c]));
    for (size_t i = 0; i < t->count; i++) {
        size_t c = i % t->ncols, w = text_width(t->cells[i].text);
        if (t->cols[c].width <= 0 && t->cells[i].kind == TABLE_CELL && w > width[c])
            width[c] = w;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        /* A left-aligned last column gets no padding: no trailing blanks. */
        int last = c + 1 == t->ncols;
        print_text_cell(out, col_title(&t->cols[c]), last && !t->cols[c].right ? 0 : width[c], t->cols[c].right);
        fputs(last ? "\n" : t->gap, out);
    }
    for (size_t i = 0; i < t->count; i++) {
        size_t c = i % t->ncols;
        int last = c + 1 == t->ncols;
        const struct table_cell *cell = &t->cells[i];
        if (cell->kind == TABLE_RULE_DASHES)
            for (size_t k = 0; k < width[c]; k++)
                fputc('-', out);
        else
            print_text_cell(out, cell->text, last && !t->cols[c].right ? 0 : width[c], t->cols[c].right);
        fputs(last ? "\n" : t->gap, out);
    }
    free(width);
}

void table_json_object(const struct table *t, size_t row, size_t first_col, FILE *out)
{
    fputc('{', out);
    for (size_t c = first_col; c < t->ncols; c++) {
        const struct table_cell *cell = &t->cells[row * t->ncols + c];
        if (c > first_col)
            fputc(',', out);
        table_json_string(out, t->cols[c].key);
        fputc(':', out);
        if (!cell->value)
            fputs("null", out);
        else if (cell->raw)
            fputs(cell->value, out);
        else
            table_json_string(out, cell->value);
    }
    fputc('}', out);
}

static void print_json(const struct table *t, FILE *out)
{
    size_t rows = table_rows(t), printed = 0;
    for (size_t r = 0; r < rows; r++) {
        if (is_rule_row(t, r))
            continue;
        fputs(printed++ ? ",\n" : "[\n", out);
        table_json_object(t, r, 0, out);
    }
    fputs(printed ? "\n]\n" : "[]\n", out);
}

static void print_csv(const struct table *t, FILE *out)
{
    for (size_t c = 0; c < t->ncols; c++) {
        if (c)
            fputc(',', out);
        csv_field(out, t->cols[c].key);
    }
    fputc('\n', out);
    for (size_t r = 0; r < table_rows(t); r++) {
        if (is_rule_row(t, r))
            continue;
        for (size_t c = 0; c < t->ncols; c++) {
            const struct table_cell *cell = &t->cells[r * t->ncols + c];
            if (c)
                fputc(',', out);
            if (cell->value)
                csv_field(out, cell->value);
        }
        fputc('\n', out);
    }
}

int table_print(const struct table *t, enum table_format f, FILE *out)
{
    if (t->oom || !t->ncols)
        return -1;
    switch (f) {
    case TABLE_TEXT:
        print_text(t, out);
        break;
    case TABLE_JSON:
        print_json(t, out);
        break;
    case TABLE_CSV:
        print_csv(t, out);
        break;
    }
    return ferror(out) ? -1 : 0;
}
