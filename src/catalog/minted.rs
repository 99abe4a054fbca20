//! The query for a table's columns and how each is minted (rule `explicit-id`: a column a
//! sequence or identity fills, followed through views and inheritance to the minted column
//! it stands for), and reading its answer.
//!
//! Owns: that SQL and its reading. Does not own: the cache (`super::Catalog::minted_of`).

use super::{literal, Mint, TableColumn};

/// A relation's columns in attnum order, each with how it is minted: `a` identity ALWAYS, `d`
/// identity BY DEFAULT, `s` a default that calls a sequence, empty otherwise — and the minted
/// columns it stands for (`schema\x1ftable\x1fcolumn`, separated by `\x1e`): followed through a
/// view to the base column its output comes from (the view rule's `resorigtbl`/`resorigcol`)
/// and through inheritance to the parents' column of the same name, at any depth. A column
/// with no mint of its own takes the first one it stands for (an insert through a view gets
/// the base's default or identity); reached through inheritance, an identity is `s` (a child
/// or partition without its own identity keeps a value given with OVERRIDING USER VALUE). Found by the name (`schema` empty:
/// as the session's search_path finds it), or by the OID first seen under it. Last: whether
/// the column has a default of its own that is not the minting one — it takes no sequence, or
/// it stands for minted columns and reads (`pg_get_expr`) unlike every default of theirs
/// (eighteenth pass E5: a view's `0 * nextval('seq') - 91111135` calls the sequence and
/// returns a hand-picked id).
pub fn minted_query(schema: &str, table: &str, oid: Option<u32>) -> String {
    let quote = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
    let qualified = if schema.is_empty() { quote(table) } else { format!("{}.{}", quote(schema), quote(table)) };
    let eq = " OPERATOR(pg_catalog.=) ";
    let kind = |rel: &str, col: &str| {
        format!(
            "(SELECT CASE WHEN ka.attidentity OPERATOR(pg_catalog.<>) ''::pg_catalog.\"char\" THEN ka.attidentity::pg_catalog.text \
               WHEN EXISTS (SELECT FROM pg_catalog.pg_attrdef ad \
                 JOIN pg_catalog.pg_depend d ON d.classid{eq}'pg_catalog.pg_attrdef'::pg_catalog.regclass \
                   AND d.objid{eq}ad.oid AND d.refclassid{eq}'pg_catalog.pg_class'::pg_catalog.regclass \
                 JOIN pg_catalog.pg_class s ON s.oid{eq}d.refobjid AND s.relkind{eq}'S'::pg_catalog.\"char\" \
                 WHERE ad.adrelid{eq}ka.attrelid AND ad.adnum{eq}ka.attnum) THEN 's' ELSE '' END \
             FROM pg_catalog.pg_attribute ka WHERE ka.attrelid{eq}{rel} AND ka.attnum{eq}{col})"
        )
    };
    format!(
        "WITH RECURSIVE o(start, rel, col, depth, viewed) AS (\
           SELECT a.attnum, a.attrelid, a.attnum, 0, true FROM pg_catalog.pg_attribute a \
           WHERE a.attrelid{eq}coalesce(pg_catalog.to_regclass({lit})::pg_catalog.oid, {oid}::pg_catalog.oid) \
             AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
           UNION \
           SELECT o.start, n.rel, n.col, o.depth OPERATOR(pg_catalog.+) 1, o.viewed AND n.viewed FROM o CROSS JOIN LATERAL (\
             SELECT i.inhparent, pa.attnum, false FROM pg_catalog.pg_inherits i \
               JOIN pg_catalog.pg_attribute ca ON ca.attrelid{eq}o.rel AND ca.attnum{eq}o.col \
               JOIN pg_catalog.pg_attribute pa ON pa.attrelid{eq}i.inhparent AND pa.attname{eq}ca.attname AND NOT pa.attisdropped \
             WHERE i.inhrelid{eq}o.rel \
             UNION ALL \
             SELECT m[2]::pg_catalog.oid, m[3]::pg_catalog.int2, true FROM pg_catalog.pg_rewrite r \
               CROSS JOIN LATERAL pg_catalog.regexp_matches(r.ev_action::pg_catalog.text, \
                 ':resno (\\d+) :resname [^:]* :ressortgroupref \\d+ :resorigtbl (\\d+) :resorigcol (\\d+)', 'g') m \
             WHERE r.ev_class{eq}o.rel AND r.rulename{eq}'_RETURN'::pg_catalog.name \
               AND m[1]::pg_catalog.int4{eq}o.col AND m[2] OPERATOR(pg_catalog.<>) '0'::pg_catalog.text\
           ) n(rel, col, viewed) WHERE o.depth OPERATOR(pg_catalog.<) 16), \
         k AS (SELECT o.start, o.rel, o.col, o.depth, o.viewed, {k} AS kind FROM o) \
         SELECT a.attnum::pg_catalog.text, a.attname::pg_catalog.text, \
           coalesce((SELECT CASE WHEN k.viewed THEN k.kind ELSE 's' END FROM k WHERE k.start{eq}a.attnum AND k.kind OPERATOR(pg_catalog.<>) '' \
             ORDER BY k.depth LIMIT 1), ''), \
           (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(pg_catalog.chr(31), n.nspname, c.relname, ka.attname), pg_catalog.chr(30)) \
             FROM k JOIN pg_catalog.pg_class c ON c.oid{eq}k.rel JOIN pg_catalog.pg_namespace n ON n.oid{eq}c.relnamespace \
             JOIN pg_catalog.pg_attribute ka ON ka.attrelid{eq}k.rel AND ka.attnum{eq}k.col \
             WHERE k.start{eq}a.attnum AND k.depth OPERATOR(pg_catalog.>) 0 AND k.kind OPERATOR(pg_catalog.<>) ''), \
           (EXISTS (SELECT FROM pg_catalog.pg_attrdef ad WHERE ad.adrelid{eq}a.attrelid AND ad.adnum{eq}a.attnum) \
             AND (NOT EXISTS (SELECT FROM k WHERE k.start{eq}a.attnum AND k.depth{eq}0 AND k.kind OPERATOR(pg_catalog.<>) '') \
               OR (EXISTS (SELECT FROM k WHERE k.start{eq}a.attnum AND k.depth OPERATOR(pg_catalog.>) 0) \
                 AND NOT EXISTS (SELECT FROM k JOIN pg_catalog.pg_attrdef od ON od.adrelid{eq}k.rel AND od.adnum{eq}k.col \
                   JOIN pg_catalog.pg_attrdef me ON me.adrelid{eq}a.attrelid AND me.adnum{eq}a.attnum \
                   WHERE k.start{eq}a.attnum AND k.depth OPERATOR(pg_catalog.>) 0 \
                   AND pg_catalog.pg_get_expr(od.adbin, od.adrelid){eq}pg_catalog.pg_get_expr(me.adbin, me.adrelid)))))::pg_catalog.text \
         FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid{eq}coalesce(pg_catalog.to_regclass({lit})::pg_catalog.oid, {oid}::pg_catalog.oid) \
           AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped ORDER BY a.attnum",
        lit = literal(&qualified),
        oid = oid.unwrap_or(0),
        k = kind("o.rel", "o.col"),
    )
}

/// Reads the answer of [`minted_query`] (attnum, name, kind, origins, own default without a
/// sequence).
pub fn minted_answer(rows: &[Vec<Option<String>>]) -> Vec<TableColumn> {
    rows.iter()
        .filter_map(|r| {
            let get = |i: usize| r.get(i).and_then(|v| v.as_deref());
            let mint = match get(2)? {
                "a" => Mint::IdentityAlways,
                "d" => Mint::IdentityByDefault,
                "s" => Mint::SequenceDefault,
                _ => Mint::None,
            };
            let origins = get(3)
                .unwrap_or("")
                .split('\u{1e}')
                .filter_map(|o| {
                    let mut p = o.split('\u{1f}');
                    Some((p.next()?.to_string(), p.next()?.to_string(), p.next()?.to_string()))
                })
                .collect();
            // A default of its own matters where the column stands for a minted one.
            let hand_default = get(4) == Some("true") && mint != Mint::None;
            Some(TableColumn { attnum: get(0)?.parse().ok()?, name: get(1)?.to_string(), mint, origins, hand_default })
        })
        .collect()
}
