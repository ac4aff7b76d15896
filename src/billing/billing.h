/*
 * billing.h - `fleetsync billing` (the service: consumer group
 * fleetsync-billing -> billing_daily) and `fleetsync report invoice` (the
 * monthly invoice from billing_daily).  See docs/billing.md.
 */
#ifndef FS_BILLING_H
#define FS_BILLING_H

/* fleetsync billing [options]; argv[0] is "billing".  Exit code 0, 1, 2. */
int cmd_billing(int argc, char **argv);

/* fleetsync report invoice [options]; argv[0] is "invoice".  Exit code 0
 * (printed), 1 (database error), 2 (usage error). */
int cmd_invoice(int argc, char **argv);

#endif
