//! Parsing deep statements safely. pg_query's tree is decoded from protobuf and walked by
//! recursive code (prost's decoder, our walk, the tree's drop): without a nesting limit an
//! ordinary statement (60 chained `||`, an `INSERT … SELECT` of 100 `UNION ALL` branches) would
//! "not parse" (prost's default limit is 100 levels), and with none a hostile one could overflow
//! the stack and abort the proxy.
//!
//! Owns: where a parse tree lives. Every parse, walk and drop of a tree runs on a thread
//! with a stack far larger than the deepest tree the parser returns needs: PostgreSQL's
//! parser stops at its own stack-depth limit (`stack depth limit exceeded`, measured by
//! libpg_query against at most 2 MB of C stack), which bounds the depth of every tree it hands
//! over; a statement past it does not parse, and is refused only when it may write. The
//! proxy's own event-loop threads are started with such a stack ([`STACK`],
//! [`mark_deep_stack`]) and parse in place; any other thread (a test's runtime, `check`)
//! hands the work to a parsing thread of its own (one per calling thread, kept while it
//! lives; a hand-off costs about 10 µs).

/// The stack of a parsing thread: reserved address space, touched only as deep as a tree goes
/// (a few hundred KB for everyday statements).
pub const STACK: usize = 256 << 20;

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// This thread was started with a stack of [`STACK`] bytes: trees are handled in place.
    static DEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Says that the calling thread was started with a stack of [`STACK`] bytes (call it first
/// thing on such a thread): parses on it then run in place, with no hand-off.
pub fn mark_deep_stack() {
    DEEP.with(|d| d.set(true));
}

thread_local! {
    /// This thread's parsing thread, started on first use and ended when this thread ends (its
    /// stack stays mapped in between: a fresh stack per parse would cost a thread start and
    /// the page faults of every frame, several times the parse itself).
    static HELPER: std::cell::RefCell<Option<std::sync::mpsc::Sender<Job>>> = const { std::cell::RefCell::new(None) };
}

fn start_helper() -> Option<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let thread = std::thread::Builder::new().name("blastwall-parse".into()).stack_size(STACK);
    thread
        .spawn(move || {
            mark_deep_stack();
            rx.iter().for_each(|job| job())
        })
        .ok()?;
    Some(tx)
}

/// Runs `f` (which parses, walks and drops a tree) where the stack is large enough for the
/// deepest tree the parser returns: here on a thread marked by [`mark_deep_stack`], otherwise
/// on this thread's parsing thread, waiting for it. If no
/// such thread can be started, `f` runs here.
pub fn on_deep_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    if DEEP.with(|d| d.get()) {
        return f();
    }
    let (done, result) = std::sync::mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    let sent = HELPER.with(|h| {
        let mut h = h.borrow_mut();
        if h.is_none() {
            *h = start_helper();
        }
        let back = match h.as_ref() {
            Some(tx) => tx.send(job).err().map(|std::sync::mpsc::SendError(job)| job),
            None => Some(job),
        };
        if back.is_some() {
            // The parsing thread is gone (or could not be started): the job runs here.
            *h = None;
        }
        back
    });
    if let Some(job) = sent {
        job();
    }
    match result.recv() {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the parsing thread ended without an answer"),
    }
}

/// [`pg_query::parse`] on a deep stack, admitted by the memory budget (a text too large for it
/// is an error), handing the tree to `f` there.
pub fn with_parse<T: Send + 'static>(
    sql: &str,
    opts: pg_query::ParserOptions,
    f: impl FnOnce(pg_query::Result<pg_query::ParseResult>) -> T + Send + 'static,
) -> T {
    let sql = sql.to_string();
    on_deep_stack(move || f(super::budget::parse(&sql, opts)))
}
