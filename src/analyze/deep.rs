//! Parsing deep statements safely. pg_query's tree is decoded from protobuf and walked by
//! recursive code (prost's decoder, our walk, the tree's drop): without a nesting limit an
//! ordinary statement (60 chained `||`, an `INSERT … SELECT` of 100 `UNION ALL` branches) would
//! "not parse" (prost's default limit is 100 levels), and with none a hostile one could overflow
//! the stack and abort the proxy.
//!
//! Owns: where a parse tree lives. Every parse, walk and drop of a tree runs on a thread of its
//! own with a stack far larger than the deepest tree the parser returns needs: PostgreSQL's
//! parser stops at its own stack-depth limit (`stack depth limit exceeded`, measured by
//! libpg_query against at most 2 MB of C stack), which bounds the depth of every tree it hands
//! over; a statement past it does not parse, and is refused only when it may write.

/// The stack of a parsing thread: reserved address space, touched only as deep as a tree goes
/// (a few hundred KB for everyday statements).
const STACK: usize = 256 << 20;

/// Runs `f` (which parses, walks and drops a tree) on a thread with a stack large enough for
/// the deepest tree the parser returns. If the thread cannot be started, `f` runs here.
pub fn on_deep_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let slot = std::sync::Mutex::new(Some(f));
    let take = || slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    let ran = std::thread::scope(|s| {
        let thread = std::thread::Builder::new().name("blastwall-parse".into()).stack_size(STACK);
        thread.spawn_scoped(s, || take().map(|f| f())).ok().map(|h| h.join())
    });
    match ran {
        Some(Ok(Some(v))) => v,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        // The thread could not be started: here, then.
        Some(Ok(None)) | None => match take() {
            Some(f) => f(),
            None => unreachable!("the closure ran on the thread"),
        },
    }
}

/// [`pg_query::parse`] on a deep stack, handing the tree to `f` there.
pub fn with_parse<T: Send>(
    sql: &str,
    opts: pg_query::ParserOptions,
    f: impl FnOnce(pg_query::Result<pg_query::ParseResult>) -> T + Send,
) -> T {
    on_deep_stack(|| f(pg_query::parse(sql, opts)))
}
