//! What ships: the toolchain the Dockerfile builds with against what the locked crates need, the
//! release profile, the image's health check and volume, the systemd unit and its readiness
//! protocol, the Debian package's files, the licences.

use std::path::Path;
use std::process::Command;

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn manifest() -> toml::Table {
    repo("Cargo.toml").parse().unwrap()
}

fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u64>().unwrap_or_else(|_| panic!("version {v:?}")));
    (parts.next().unwrap(), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn the_image_toolchain_is_new_enough_for_the_locked_crates() {
    let m = manifest();
    let declared = version(m["package"]["rust-version"].as_str().unwrap());
    let dockerfile = repo("docker/Dockerfile");
    let from = dockerfile.lines().find_map(|l| l.strip_prefix("FROM rust:")).expect("a FROM rust:… line");
    let image = version(from.split(['-', ' ']).next().unwrap());
    assert!(image >= declared, "the Dockerfile builds with Rust {image:?}, Cargo.toml says {declared:?} is needed");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata (run `cargo fetch` once): {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (need, who) = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] != "blastwall")
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), format!("{} {}", p["name"], p["version"]))))
        .max()
        .unwrap();
    assert!(declared >= need, "{who} needs Rust {need:?}; Cargo.toml's rust-version says {declared:?}");
    assert!(image >= need, "{who} needs Rust {need:?}; the Dockerfile builds with {image:?}");
}

#[test]
fn the_release_binary_is_stripped_and_profiling_has_its_own_profile() {
    let m = manifest();
    let release = m["profile"]["release"].as_table().unwrap();
    assert!(
        release.get("debug").is_none_or(|d| d.as_integer() == Some(0) || d.as_bool() == Some(false)),
        "{release:?}"
    );
    assert!(release.get("strip").is_some_and(|s| s.as_bool() == Some(true) || s.as_str() == Some("symbols")));
    let profiling = m["profile"]["profiling"].as_table().unwrap();
    assert_eq!(profiling["inherits"].as_str(), Some("release"));
    assert!(profiling.contains_key("debug"));
}

#[test]
fn the_image_checks_its_health_with_blastwall_and_compose_mounts_the_policies() {
    let dockerfile = repo("docker/Dockerfile");
    let health = dockerfile.lines().skip_while(|l| !l.starts_with("HEALTHCHECK")).take(2).collect::<String>();
    assert!(health.contains("\"/usr/local/bin/blastwall\", \"health\", \"--admin\", \"127.0.0.1:9187\""), "{health}");
    assert!(
        dockerfile.contains("\"--admin\", \"0.0.0.0:9187\""),
        "the health check asks the admin port the image serves"
    );
    let compose = repo("docker/compose.yml");
    assert!(compose.contains("--policy=/etc/blastwall/policies"));
    assert!(
        compose.contains("- ../policies:/etc/blastwall/policies"),
        "policies are mounted, so edits reload: {compose}"
    );
}

#[test]
fn the_systemd_unit_is_hardened_and_waits_for_readiness() {
    let unit = repo("packaging/blastwall.service");
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/blastwall serve --config /etc/blastwall/blastwall.toml --log-format json",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ] {
        assert!(has(line), "the unit lacks {line}");
    }
    // The configuration it starts with loads.
    let cfg = blastwall::config::Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/blastwall.toml"));
    assert!(cfg.is_ok(), "{:?}", cfg.err());
}

#[test]
fn serve_tells_systemd_when_it_listens_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"])
        .env("NOTIFY_SOCKET", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("READY=1 within 30 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    let addr = ready.split("listening on ").nth(1).expect("STATUS names the address").trim().to_string();
    assert!(std::net::TcpStream::connect(&addr).is_ok(), "ready before it listens on {addr}");
    Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(child.0.wait().unwrap().success());
}

/// A server that a failed test must not leave running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_debian_package_lists_files_that_exist_or_are_built() {
    let m = manifest();
    let deb = m["package"]["metadata"]["deb"].as_table().expect("[package.metadata.deb]");
    let build = repo("packaging/build-deb");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let assets = deb["assets"].as_array().unwrap();
    let sources: Vec<&str> = assets.iter().map(|a| a[0].as_str().unwrap()).collect();
    for src in &sources {
        match src.strip_prefix("target/assets/") {
            Some(generated) => {
                assert!(build.contains(&format!("\"$out/{generated}\"")), "build-deb does not make {src}")
            }
            None if *src == "target/release/blastwall" => assert!(build.contains("cargo build --release")),
            None => assert!(root.join(src).is_file(), "{src} is not in the repository"),
        }
    }
    for needed in
        ["target/release/blastwall", "target/assets/blastwall.1", "packaging/blastwall.toml", "policies/default.toml"]
    {
        assert!(sources.contains(&needed), "the package lacks {needed}");
    }
    let units = deb["systemd-units"].as_table().unwrap();
    let unit = root
        .join(units["unit-scripts"].as_str().unwrap())
        .join(format!("{}.service", units["unit-name"].as_str().unwrap()));
    assert!(unit.is_file(), "{}", unit.display());
    let conf: Vec<&str> = deb["conf-files"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(conf.contains(&"/etc/blastwall/blastwall.toml"));
}

#[test]
fn both_licences_the_manifest_names_are_shipped() {
    assert_eq!(manifest()["package"]["license"].as_str(), Some("MIT OR Apache-2.0"));
    let mit = repo("LICENSE-MIT");
    assert!(mit.starts_with("MIT License") && mit.contains("THE SOFTWARE IS PROVIDED \"AS IS\""));
    let apache = repo("LICENSE-APACHE");
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0, January 2004"));
    assert!(apache.contains("END OF TERMS AND CONDITIONS"));
}
