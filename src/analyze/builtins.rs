//! The built-in functions a statement may call without being taken for a call of a user's
//! function (`walk`; the hidden callers' query leaves them out too: `catalog::hidden`).
//!
//! Owns: that list, the other built-in names a user's function may take ([`LOOK_ALIKES`]),
//! and which settings `set_config` may change without a call's effects ([`custom_setting`]).

/// Built-in functions that do not write, called unqualified in everyday SQL. Any other call
/// may be a user function whose body writes (see `[opaque] functions`).
pub const BUILTINS: &[&str] = &[
    "abs",
    "age",
    "array_agg",
    "array_length",
    "avg",
    "bool_and",
    "bool_or",
    "btrim",
    "ceil",
    "ceiling",
    "char_length",
    "clock_timestamp",
    "coalesce",
    "concat",
    "concat_ws",
    "count",
    "current_date",
    "current_setting",
    "currval",
    "date_part",
    "date_trunc",
    "decode",
    "encode",
    "every",
    "exp",
    "extract",
    "floor",
    "format",
    "gen_random_uuid",
    "generate_series",
    "greatest",
    "json_agg",
    "json_build_object",
    "jsonb_agg",
    "jsonb_build_object",
    "lag",
    "lead",
    "least",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "max",
    "md5",
    "min",
    "mod",
    "now",
    "nullif",
    "pg_backend_pid",
    "pg_sleep",
    "position",
    "power",
    "random",
    "rank",
    "regexp_replace",
    "replace",
    "right",
    "round",
    "row_number",
    "rpad",
    "rtrim",
    "sqrt",
    "statement_timestamp",
    "string_agg",
    "strpos",
    "substr",
    "substring",
    "sum",
    "timezone",
    "to_char",
    "to_date",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_timestamp",
    "transaction_timestamp",
    "trim",
    "trunc",
    "unnest",
    "upper",
    "version",
    "nextval",
    "setval",
    "dense_rank",
    "first_value",
    "last_value",
    "ntile",
    "percent_rank",
    "cume_dist",
    "nth_value",
    "array_to_string",
    "string_to_array",
    "split_part",
    "initcap",
    "repeat",
    "reverse",
    "uuid_generate_v4",
    "row_to_json",
    // A transaction's or session's advisory lock (an application's mutex): it takes a lock
    // of the application's key space, and changes nothing else.
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    // An advisory lock's key made from a text (`pg_advisory_xact_lock(hashtext($1))`).
    "hashtext",
    "hashtextextended",
];

/// Every unqualified built-in name a call of which the analyzer may take for no user's call:
/// [`BUILTINS`], and `set_config` of a role or a custom setting. A user's function of one of
/// these names is a hidden caller (`catalog::hidden`): the server may resolve the call to it
/// (a path that lists `pg_catalog` after its schema, or an argument type only it takes).
pub fn look_alikes() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().copied().chain(LOOK_ALIKES.iter().copied())
}

/// The built-ins of `pg_catalog` that run SQL: the XML exports (`query_to_xml` and its kin run
/// a query's text; `cursor_to_xml` reads a cursor; `table_to_xml`, `schema_to_xml` and
/// `database_to_xml` read whole relations, views among them) and the text-search ones that run
/// a query's text (`ts_stat`, `ts_rewrite` with a query). Called qualified with `pg_catalog` too,
/// they are calls of code like a user function's, whose caller steers what they run (they
/// explain no change of a table with text rules: `guard::reached`) (seventieth pass F2: `pg_catalog.query_to_xml`
/// moved the protected sequence 200,000 steps, uncounted); in a stored expression they make
/// a hidden caller (`catalog::hidden::runners`).
pub const RUNNERS: &[&str] = &[
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "ts_rewrite",
    // A type's input (or binary receive) by the type's OID: a domain's `CHECK` runs, and an
    // array's, row's or range's over one (seventy-first pass F1, F2: `pg_catalog.domain_in('5',
    // <a temporary domain's OID>, -1)` ran another session's temporary function); and by the
    // type's name in a string.
    "domain_in",
    "domain_recv",
    "array_in",
    "array_recv",
    "record_in",
    "record_recv",
    "range_in",
    "range_recv",
    "multirange_in",
    "multirange_recv",
    "pg_input_is_valid",
    "pg_input_error_info",
    // A language's validator, given a function by OID, analyzes its body: a constant there is
    // converted to its type, a domain's `CHECK` runs (seventy-second pass H1:
    // `pg_catalog.fmgr_sql_validator(<another session's temporary function>)` deleted the
    // window). Any `…_validator` or `…_handler` of `pg_catalog` counts too (`walk`).
    "fmgr_sql_validator",
    "fmgr_c_validator",
    "fmgr_internal_validator",
    "plpgsql_validator",
];

/// Whether a `pg_catalog` function called by name runs code its caller gives it
/// ([`RUNNERS`], a language's validator or handler).
pub fn runs_given_code(name: &str) -> bool {
    RUNNERS.contains(&name) || name.ends_with("_validator") || name.ends_with("_handler")
}

/// Built-ins outside [`BUILTINS`] whose calls the analyzer may still take for no user's call.
pub const LOOK_ALIKES: &[&str] = &["set_config"];

/// Whether `set_config(name, …)` of this constant name sets a custom setting — a name with a
/// dot, which no built-in setting has (`request.jwt.claim.sub`, PostgREST's; `app.tenant`),
/// read back by `current_setting` — that cannot change what a later name resolves to, what
/// blastwall reads, or run code: not blastwall's own (`blastwall.mode`, `blastwall.ddl_notify`,
/// judged as such), and not a procedural language's (`plv8.start_proc` names a function to
/// run).
pub fn custom_setting(name: &str) -> bool {
    let Some((prefix, rest)) = name.split_once('.') else {
        return false;
    };
    let lower = prefix.to_ascii_lowercase();
    !rest.is_empty() && !prefix.is_empty() && lower != "blastwall" && !lower.starts_with("pl")
}
