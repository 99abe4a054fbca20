"""Ids taken ahead through blastwall as applications take them: asyncpg (Parse/Describe/Flush,
then Bind/Execute/Sync; prepared once, then executed again) and psycopg's pipeline mode (many
Executes before one Sync). Prints each driver's ids relative to its first one."""
import asyncio
import sys

import asyncpg
import psycopg

NEXT = "SELECT nextval('web_user_id_seq')"


async def with_asyncpg(port, db, password):
    c = await asyncpg.connect(host="127.0.0.1", port=port, user="app", password=password, database=db, ssl=False)
    ids = [await c.fetchval(NEXT) for _ in range(3)]
    stmt = await c.prepare(NEXT)
    ids += [await stmt.fetchval() for _ in range(3)]
    async with c.transaction():
        ids.append(await c.fetchval(NEXT))
    await c.close()
    return ids


def with_psycopg(port, db, password):
    with psycopg.connect(host="127.0.0.1", port=port, user="app", password=password, dbname=db, autocommit=True) as c:
        with c.pipeline():
            curs = [c.execute(NEXT) for _ in range(5)]
        return [cur.fetchone()[0] for cur in curs]


def relative(ids):
    return [i - ids[0] for i in ids]


port, db, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print("asyncpg", relative(asyncio.run(with_asyncpg(port, db, password))))
print("psycopg", relative(with_psycopg(port, db, password)))
