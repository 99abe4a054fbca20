\set aid random(1, 100000 * :scale)
DELETE FROM pgbench_accounts WHERE aid = :aid;
