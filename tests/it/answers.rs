//! Issue 11, protocol fidelity on the paths where blastwall holds a message back: what the
//! server would answer (an error of its own, a notice) reaches the client as directly. Raw
//! protocol scripts run directly and through blastwall with the shipped policies, as the
//! DML-only raw role, on twin databases; the client-visible streams are compared.

use crate::batches::*;
use crate::harness::*;

/// The script directly and through a proxy with the shipped policies, on twin incident
/// databases; the streams compared.
pub(crate) async fn same_as_direct_shipped(script: &[Step]) -> Vec<Msg> {
    let (d1, d2) = (crate::binds::setup(), crate::binds::setup());
    let proxy = proxy_with(base_config(), shipped_policy()).await;
    let direct = run(pg().server.port, &d1, script).await;
    let via = run(proxy.port(), &d2, script).await;
    proxy.stop().await;
    assert_eq!(show(&mask_pids(&via)), show(&mask_pids(&direct)), "through blastwall (left) and direct (right) differ");
    via
}

/// A NotificationResponse's sender PID (its first four bytes, which may be any bytes — a
/// newline among them split `show`'s lines) as `pid`: the two servers' backends differ.
fn mask_pids(m: &[Msg]) -> Vec<Msg> {
    m.iter()
        .map(|(t, b)| match (*t, b.get(4..)) {
            (b'A', Some(rest)) => (*t, [b"pid\0".as_slice(), rest].concat()),
            _ => (*t, b.clone()),
        })
        .collect()
}

/// Sixth pass F9: a Bind of a statement that does not exist after another Bind of the same
/// batch (whose conversion blastwall cannot count alone): the server's 26000, not a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_of_a_missing_statement_after_another_bind_gets_the_servers_error() {
    let script = [
        Send([p("", "SELECT 1"), sync()].concat()),
        Until(b'Z', 1),
        Send([b("", "", &[]), b("p2", "s9", &[]), sync()].concat()),
        Until(b'Z', 1),
        Send(q("SELECT 2")),
        Until(b'Z', 1),
    ];
    let via = same_as_direct_shipped(&script).await;
    assert!(show(&via).contains("C26000"), "{}", show(&via));
    // Nearby forms: first in its batch, with its Execute, after a Parse, named portals.
    for batch in [
        [b("p2", "s9", &[]), sync()].concat(),
        [b("p2", "s9", &[]), e("p2", 0), sync()].concat(),
        [p("", "SELECT 1"), b("", "", &[]), b("p2", "s9", &["1"]), e("p2", 0), sync()].concat(),
        [
            p("s1", "SELECT 1"),
            b("p1", "s1", &[]),
            e("p1", 0),
            b("p2", "s9", &[]),
            describe(b'P', "p2"),
            flush(),
            sync(),
        ]
        .concat(),
    ] {
        let script = [Send(batch), Until(b'Z', 1), Send(q("SELECT 2")), Until(b'Z', 1)];
        let via = same_as_direct_shipped(&script).await;
        assert!(show(&via).contains("C26000"), "{}", show(&via));
    }
}

/// Seventh pass: a Parse of `COPY … FROM STDIN` after a Close and a Flush of the same batch, in
/// a session with a temporary table (no code): not refused as if its temporary schema held
/// code, as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_parsed_after_a_close_and_flush_is_not_refused() {
    let close = msg(b'C', b"Ss1\0");
    let script = [
        Send(q("CREATE TEMP TABLE t (a int)")),
        Until(b'Z', 1),
        Send([close, flush()].concat()),
        Until(b'3', 1),
        Send([p("", "COPY t FROM STDIN"), flush()].concat()),
        Until(b'1', 1),
        Send(q("SELECT 2")),
        Until(b'Z', 1),
    ];
    same_as_direct_shipped(&script).await;
}

/// The other side of the same: a session whose temporary schema holds code (a trigger that
/// deletes every user, on another temporary table) is asked about, and its COPY FROM STDIN
/// after a Close and a Flush stays refused (every statement of it is counted, and a COPY's
/// cannot be). The users are counted on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_parsed_after_a_close_and_flush_in_a_session_with_code_is_refused() {
    use tokio::io::AsyncWriteExt;
    let db = crate::binds::setup();
    let users = "SELECT count(*) FROM users";
    let before = admin_sql(pg(), &db, users);
    let proxy = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(proxy.port(), crate::binds::RAW, &db).await;
    for sql in [
        "CREATE TEMP TABLE t (a int)",
        "CREATE TEMP TABLE u (a int)",
        "CREATE FUNCTION pg_temp.d() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN DELETE FROM public.users WHERE auth_source IS NOT NULL; RETURN NEW; END$$",
        "CREATE TRIGGER d BEFORE INSERT ON u FOR EACH ROW EXECUTE FUNCTION pg_temp.d()",
    ] {
        let r = crate::batchnames::send(&mut s, &[q(sql)]).await;
        assert!(r.codes.is_empty(), "{sql}: {r:?}");
    }
    s.write_all(&[msg(b'C', b"Ss1\0"), flush()].concat()).await.unwrap();
    assert_eq!(read_msg(&mut s).await.0, b'3');
    let copy =
        [p("", "COPY t FROM STDIN"), b("", "", &[]), e("", 0), sync(), msg(b'd', b"1\n"), msg(b'c', &[]), sync()];
    let r = crate::batchnames::send(&mut s, &copy).await;
    assert!(r.errors.contains("temporary schema holds code"), "{r:?}");
    assert_eq!(admin_sql(pg(), &db, users), before);
    proxy.stop().await;
}
