"""asyncpg through blastwall: Parse/Describe/Flush before Bind/Execute/Sync, executemany
(pipelined Bind/Execute), RETURNING, a transaction, a statement that fails on the server, and
copy_records_to_table (Parse/Describe/Flush, then a COPY Query inside that open batch)."""
import asyncio
import sys

import asyncpg


async def main(port, db):
    c = await asyncpg.connect(host="127.0.0.1", port=port, user="trust_user", database=db, ssl=False)
    notices = []
    c.add_log_listener(lambda _c, m: notices.append(m.message))
    out = [await c.execute("UPDATE parent SET v = $1 WHERE id = $2", 5, 7)]
    out.append(str([tuple(r) for r in await c.fetch("UPDATE parent SET v = v + 1 WHERE id = $1 RETURNING id, v", 8)]))
    await c.executemany("UPDATE parent SET v = v + 1 WHERE id = $1", [(i,) for i in range(1, 121)])
    await c.executemany("DELETE FROM child WHERE id = $1", [(i,) for i in range(200, 260)])
    async with c.transaction():
        out.append(await c.execute("DELETE FROM child WHERE id = $1", 9))
        out.append(str(await c.fetchval("SELECT count(*) FROM child")))
    try:
        await c.execute("UPDATE parent SET id = 1 WHERE id = $1", 2)
    except asyncpg.PostgresError as e:
        out.append(f"{e.sqlstate}: {e}")
    out.append(await c.copy_records_to_table("parent", records=[(1000, 3), (1001, 4)], columns=["id", "v"]))
    out.append(str(await c.fetchval("SELECT sum(v) FROM parent")))
    await c.close()
    out.append(f"notices: {len(notices)}")
    print("\n".join(map(str, out)))


asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), sys.argv[2]), 60))
