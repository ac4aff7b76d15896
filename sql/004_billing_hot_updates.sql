-- 004_billing_hot_updates.sql - room in billing's pages for in-place updates
-- (docs/billing.md, "What PostgreSQL pays").  Every state flush rewrites the
-- row of each truck folded since the last one (billing_trucks) and of its
-- day (billing_daily).  With full pages an update must put the new version
-- on another page and add it to every index; with free room on the page it
-- is a HOT update (no index touched), about half the CPU per row measured.
-- Applies to pages filled from now on; existing ones converge as their rows
-- move.  billing_daily keeps less room: only the current day's rows are
-- updated, older ones never again.
ALTER TABLE billing_trucks SET (fillfactor = 50);
ALTER TABLE billing_daily SET (fillfactor = 70);
