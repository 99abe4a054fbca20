//! `blastwall config check FILE` and `blastwall health`, run as the real binary.

use crate::harness::*;

fn blastwall(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blastwall")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_passes_a_good_config_and_names_file_and_line_of_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("blastwall.toml");
    let cfg_s = cfg.display().to_string();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\n").unwrap();
    std::fs::write(
        &cfg,
        "listen = [\"127.0.0.1:6432\", \"/run/blastwall\"]\nupstream = \"db.internal\"\npolicies = [\"p.toml\"]\n\n[console]\nadmins = [\"postgres\"]\n",
    )
    .unwrap();
    let (code, out, err) = blastwall(&["config", "check", &cfg_s]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok") && out.contains("db.internal:5432") && out.contains("/run/blastwall/.s.PGSQL.6432"),
        "{out}"
    );
    // A policy that does not compile, and a key file that is not there: both reported.
    std::fs::write(&policy, "[[table]]\nname = \"public.users\"\nmax_delete_rows = -1\n").unwrap();
    std::fs::write(&cfg, "policies = [\"p.toml\"]\n[tls]\ncert = \"nope.crt\"\nkey = \"nope.key\"\n").unwrap();
    let (code, _, err) = blastwall(&["config", "check", &cfg_s]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{}:3:", policy.display())), "{err}");
    assert!(err.contains(&format!("{cfg_s}:3:")) && err.contains("nope.crt"), "{err}");
    // A config error stops there, with its line.
    std::fs::write(&cfg, "listen = \"127.0.0.1:6432\"\nupstream = \"db:notaport\"\n").unwrap();
    let (code, _, err) = blastwall(&["config", "check", &cfg_s]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{cfg_s}:2:")) && err.contains("upstream"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_0_when_ready_and_1_when_the_server_is_down_or_nobody_answers() {
    let mut c = base_config();
    c.admin = Some("127.0.0.1:0".into());
    let p = proxy_with(c, blastwall::demo::incident_policy().unwrap()).await;
    let admin = p.admin.unwrap().to_string();
    let a = admin.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || blastwall(&["health", "--admin", &a])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ready"), "{out}");
    p.stop().await;
    // The server unreachable: /readyz answers 503.
    let mut c = base_config();
    c.admin = Some("127.0.0.1:0".into());
    c.upstream_port = blastwall::pgtemp::free_port();
    let p = proxy_with(c, blastwall::demo::incident_policy().unwrap()).await;
    let a = p.admin.unwrap().to_string();
    let (code, _, err) = tokio::task::spawn_blocking(move || blastwall(&["health", "--admin", &a])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("503"), "{err}");
    p.stop().await;
    // Nobody there.
    let (code, _, err) = tokio::task::spawn_blocking(move || blastwall(&["health", "--admin", &admin])).await.unwrap();
    assert_eq!(code, 1, "{err}");
}
