//! The taint's state: when it is asked, what an answer means, and what a quiet run keeps.

use super::*;

#[test]
fn a_new_session_is_clean_and_asks_again_after_a_message_that_may_change_its_schema() {
    let mut t = Taint::default();
    assert!(!t.runs_code() && !t.must_ask());
    t.may_change();
    assert!(t.must_ask() && t.runs_code());
    t.learn(Some(&[]), false);
    assert!(!t.runs_code() && !t.must_ask() && !t.learned_in_block());
    let row = |a: &str, k: &str| vec![Some(a.to_string()), Some(k.to_string())];
    t.learn(Some(&[row("", "d")]), false);
    assert!(!t.runs_code() && !t.defers(), "a deferrable constraint alone is no code");
    t.learn(Some(&[row("function pg_temp_3.f()", "c")]), true);
    assert!(t.runs_code() && t.learned_in_block() && t.what() == "function pg_temp_3.f()" && !t.defers());
    t.learn(Some(&[row("function pg_temp_3.f()", "c"), row("", "d")]), false);
    assert!(t.defers());
    t.on_ready();
    assert!(t.runs_code() && !t.must_ask(), "an answer does not end at a ReadyForQuery");
}

/// A path open to another role's new objects counts every statement as code does; a
/// message that may change the path asks for it alone, and what cannot be asked holds the
/// session as tainted until the next ReadyForQuery (never asked again and again).
#[test]
fn an_open_path_counts_every_statement_and_is_asked_again_after_a_path_change() {
    let row = |a: &str, k: &str| vec![Some(a.to_string()), Some(k.to_string())];
    let mut t = Taint::default();
    t.learn(Some(&[row("schema own is on the search_path", "p")]), false);
    assert!(t.runs_code() && !t.must_ask() && t.reason().starts_with("schema own is on the search_path"));
    assert!(!t.holds_functions() && !t.defers(), "a path is no code of the session's");
    t.may_change_path();
    assert!(t.must_ask() && t.only_path_stale() && t.runs_code());
    t.learn_path(Some(&[vec![None]]), false);
    assert!(!t.runs_code() && !t.must_ask());
    t.may_change_path();
    t.assume();
    assert!(t.runs_code() && !t.must_ask(), "assumed: not asked again in the batch");
    t.on_ready();
    assert!(t.must_ask() && !t.only_path_stale(), "asked whole after the batch");
    t.learn_path(None, true);
    assert!(t.runs_code() && t.learned_in_block(), "not answered: open");
    // A session never asked asks it all in its first question.
    let mut u = Taint::unasked();
    u.may_change_path();
    assert!(!u.must_ask() && !u.only_path_stale());
    learn_first_path(&mut u, &[vec![Some("t".into()), None, None, Some("schema x".into())]]);
    assert!(u.reason().contains("schema x"));
}

/// A schema whose code includes a user function may be written through by any statement;
/// code without one (a default's `nextval`) writes no table.
#[test]
fn user_functions_are_held_as_the_last_answer_or_a_message_since_says() {
    let row = |a: &str, k: &str| vec![Some(a.to_string()), Some(k.to_string())];
    let mut t = Taint::default();
    t.learn(Some(&[row("function pg_temp_3.f()", "c"), row("", "f")]), false);
    assert!(t.holds_functions());
    t.learn(Some(&[row("default value for column id of view v", "c")]), false);
    assert!(!t.holds_functions());
    t.learn(None, false);
    assert!(t.holds_functions(), "not known");
    t.learn(Some(&[]), false);
    assert!(!t.holds_functions());
    // Functions known, then a message that may change the schema: until asked again (or
    // assumed where it cannot be), they are held.
    t.learn(Some(&[row("function pg_temp_3.f()", "c"), row("", "f")]), false);
    t.may_change();
    assert!(t.holds_functions());
    t.assume();
    assert!(t.holds_functions());
    t.learn(Some(&[]), false);
    t.may_change();
    assert!(!t.holds_functions(), "no functions at the last answer");
    t.may_make_code();
    assert!(t.holds_functions(), "a message made code since");
}

#[test]
fn a_new_client_session_is_not_known_clean_until_asked() {
    let mut t = Taint::unasked();
    assert!(t.is_unasked() && t.runs_code() && t.defers() && !t.must_ask());
    let row = |v: &str| vec![Some(v.to_string())];
    assert!(never_had_one(&[row("t")]) && !never_had_one(&[row("f")]) && !never_had_one(&[]));
    t.learn(Some(&[]), false);
    assert!(!t.is_unasked() && !t.runs_code());
    t.transaction_ended();
    assert!(!t.runs_code(), "a direct connection's answer outlives its transaction");
}

#[test]
fn behind_a_pooler_an_answer_lasts_one_transaction() {
    let rows = |pid: &str| vec![vec![Some("t".to_string()), Some(pid.to_string())]];
    let mut t = Taint::unasked();
    t.learn_backend(Some(&rows("4242")), Some(4242));
    assert!(!t.pooled());
    t.learn_backend(Some(&rows("4243")), Some(4242));
    assert!(t.pooled());
    t.learn(Some(&[]), false);
    assert!(!t.runs_code());
    t.transaction_ended();
    assert!(t.is_unasked() && t.runs_code());
    let mut u = Taint::unasked();
    u.learn_backend(None, Some(4242));
    assert!(u.pooled(), "not known: pooled");
}

#[test]
fn an_unanswerable_question_taints_until_the_next_ready_for_query_and_a_refused_query_for_good() {
    let mut t = Taint::default();
    t.assume();
    assert!(t.runs_code() && !t.must_ask() && !t.defers(), "as last learned");
    t.on_ready();
    assert!(t.must_ask());
    t.learn(None, false);
    assert!(t.runs_code() && !t.must_ask() && !t.what().is_empty());
}

/// A message's marks are given back only by its own quiet check, and only while nothing was
/// marked or learned since it was judged.
#[test]
fn a_quiet_check_gives_back_only_its_own_messages_marks() {
    let row = |a: &str, k: &str| vec![Some(a.to_string()), Some(k.to_string())];
    let judged = |t: &mut Taint| {
        t.begin_message();
        t.may_change();
        t.may_make_view();
        t.end_message();
        t.to_check();
    };
    let mut t = Taint::default();
    t.learn(Some(&[]), false);
    judged(&mut t);
    assert!(t.must_ask());
    let u = t.take_for_check().expect("remembered");
    t.ran_quietly(&u);
    assert!(!t.must_ask() && !t.runs_code() && !t.may_redirect(), "as before the message");
    assert!(t.take_for_check().is_none(), "taken once");
    // Tainted before: tainted again, with what it held.
    t.learn(Some(&[row("function pg_temp_3.f()", "c"), row("", "f")]), false);
    judged(&mut t);
    let u = t.take_for_check().unwrap();
    t.ran_quietly(&u);
    assert!(t.runs_code() && t.holds_functions() && !t.must_ask() && t.what() == "function pg_temp_3.f()");
    // Marked again after the judgement (another message): not given back.
    t.learn(Some(&[]), false);
    judged(&mut t);
    let u = t.take_for_check().unwrap();
    t.may_change();
    t.ran_quietly(&u);
    assert!(t.must_ask());
    // Learned since: the newer answer stands.
    t.learn(Some(&[]), false);
    judged(&mut t);
    let u = t.take_for_check().unwrap();
    t.learn(Some(&[row("function pg_temp_3.g()", "c")]), false);
    t.ran_quietly(&u);
    assert!(t.runs_code() && t.what() == "function pg_temp_3.g()");
    // Not handed to a check (a message judged without one): nothing to give back.
    t.learn(Some(&[]), false);
    t.begin_message();
    t.may_change();
    t.end_message();
    assert!(t.take_for_check().is_none());
    // A later message's judgement forgets an earlier one's.
    judged(&mut t);
    t.begin_message();
    t.end_message();
    t.to_check();
    assert!(t.take_for_check().is_none());
}
