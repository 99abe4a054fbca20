"""Writes by parameters through blastwall, in a database with a domain whose CHECK calls a
function and a column named like it: asyncpg (Parse/Describe/Flush, then Bind/Execute/Sync;
executemany) and psycopg (executemany). Prints what each did."""
import asyncio
import sys

import asyncpg
import psycopg


async def with_asyncpg(port, db, password):
    c = await asyncpg.connect(host="127.0.0.1", port=port, user="app", password=password, database=db, ssl=False)
    out = [await c.execute("UPDATE users SET email = $2 WHERE id = $1", -91111101, "a@example.com")]
    await c.executemany("UPDATE users SET email = $2 WHERE id = $1", [(-91111102, "b@x"), (-91111103, "c@x")])
    out.append(await c.execute("DELETE FROM users WHERE auth_source = $1 AND email = $2", "test", "c@x"))
    await c.close()
    return out


def with_psycopg(port, db, password):
    with psycopg.connect(host="127.0.0.1", port=port, user="app", password=password, dbname=db, autocommit=True) as c:
        with c.cursor() as cur:
            cur.executemany("UPDATE users SET email = %s WHERE id = %s", [("d@x", -91111104), ("e@x", -91111105)])
            return cur.rowcount


port, db, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print("asyncpg", asyncio.run(with_asyncpg(port, db, password)))
print("psycopg", with_psycopg(port, db, password))
