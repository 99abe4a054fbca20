"""psycopg through blastwall: executemany with and without returning, pipeline mode with a
fetch inside it, a transaction, notices from a cascade's triggers, and a COPY then a pipeline
then a counted statement without parameters (a simple Query behind the pipeline's Sync and
Flush: nineteenth pass FPk)."""
import sys

import psycopg

out = []
with psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), user="trust_user", dbname=sys.argv[2],
                     sslmode="disable", autocommit=True) as c:
    c.add_notice_handler(lambda d: out.append("notice: " + d.message_primary))
    cur = c.cursor()
    cur.executemany("UPDATE parent SET v = v + 1 WHERE id = %s", [(i,) for i in range(1, 121)])
    cur.executemany("UPDATE parent SET v = v + 1 WHERE id = %s RETURNING id, v", [(i,) for i in range(1, 6)],
                    returning=True)
    while True:
        out.append(str(cur.fetchall()))
        if not cur.nextset():
            break
    with c.pipeline():
        cur.execute("SELECT count(*) FROM child")
        cur.execute("DELETE FROM child WHERE id = %s RETURNING id", (10,))
        out.append(str(cur.fetchall()))
        cur.execute("UPDATE parent SET v = 0 WHERE id = %s", (30,))
    with c.transaction():
        cur.execute("DELETE FROM parent WHERE id = %s", (14,))
        out.append(str(cur.rowcount))
    cur.execute("SELECT sum(v) FROM parent")
    out.append(str(cur.fetchone()))
    with cur.copy("COPY parent (id, v) FROM STDIN") as cp:
        cp.write_row((1001, 5))
    with c.pipeline():
        cur.execute("SELECT 1")
        cur.execute("UPDATE parent SET v = v + %s WHERE id = %s", (1, 1001))
    cur.execute("UPDATE parent SET v = v + 1 WHERE id = 1001")
    cur.execute("SELECT v FROM parent WHERE id = 1001")
    out.append(str(cur.fetchone()))
print("\n".join(out))
