/*
 * csv.h - one CSV field as RFC 4180 writes it, for the reports' --csv
 * (history's reports and billing's invoice).
 */
#ifndef FS_CSV_H
#define FS_CSV_H

#include <stdio.h>

/* Writes s, quoted (quotes doubled) when it holds a comma, a quote, a line
 * break, or starts or ends with a space. */
void csv_field(FILE *out, const char *s);

#endif
