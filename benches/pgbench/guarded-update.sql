\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
UPDATE pgbench_guarded SET abalance = abalance + :delta WHERE aid = :aid;
