\set aid random(1, 100000 * :scale)
DELETE FROM pgbench_guarded WHERE aid = :aid;
