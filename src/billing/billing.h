/*
 * billing.h - `fleetsync billing`, the service: consumer group
 * fleetsync-billing -> billing_daily (docs/billing.md).  The monthly invoice
 * from billing_daily is a report (report/invoice.h).
 */
#ifndef FS_BILLING_H
#define FS_BILLING_H

/* fleetsync billing [options]; argv[0] is "billing".  Exit code 0, 1, 2. */
int cmd_billing(int argc, char **argv);

#endif
