/*
 * invoice.h - `fleetsync report invoice`: the monthly invoice from the
 * billing pipeline's billing_daily (docs/billing.md).
 */
#ifndef FS_REPORT_INVOICE_H
#define FS_REPORT_INVOICE_H

/* fleetsync report invoice [options]; argv[0] is "invoice".  Exit code 0
 * (printed), 1 (database error), 2 (usage error). */
int cmd_invoice(int argc, char **argv);

#endif
