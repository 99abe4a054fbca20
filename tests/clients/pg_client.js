// node-postgres through blastwall: parameterised writes, queued queries in a transaction,
// RETURNING.
const { Client } = require('pg');

(async () => {
  const c = new Client({ host: '127.0.0.1', port: +process.argv[2], user: 'trust_user', database: process.argv[3] });
  await c.connect();
  const out = [];
  out.push((await c.query('UPDATE parent SET v = $1 WHERE id = $2', [3, 4])).rowCount);
  await c.query('BEGIN');
  const ps = [];
  for (let i = 1; i <= 20; i++) ps.push(c.query('UPDATE parent SET v = v + 1 WHERE id = $1', [i]));
  out.push((await Promise.all(ps)).map((r) => r.rowCount).join(','));
  out.push((await c.query('DELETE FROM child WHERE id = $1 RETURNING id', [12])).rows[0].id);
  await c.query('COMMIT');
  out.push((await c.query('SELECT sum(v) AS s FROM parent')).rows[0].s);
  await c.end();
  console.log(out.join('\n'));
})().catch((e) => {
  console.log('error: ' + e.message);
  process.exit(1);
});
