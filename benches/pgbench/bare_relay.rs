//! A measuring instrument, not part of blastwall: the least a tokio proxy can do — accept,
//! connect upstream, copy bytes both ways — so that the benchmark can show what any relay
//! built on this runtime costs before it reads a single message.
//!
//! Owns: nothing but the byte copy. Does not own: framing, TLS, policy, anything blastwall does.
//!
//!   cargo run --release --example bare_relay -- LISTEN UPSTREAM [THREADS]

use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1).cloned(), args.get(2).cloned()) else {
        eprintln!("usage: bare_relay LISTEN UPSTREAM [THREADS]");
        std::process::exit(2);
    };
    let threads: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(0);
    // The same runtime choices as blastwall's `threads` setting.
    let rt = match threads {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        0 => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
    };
    rt.block_on(async move {
        let listener = TcpListener::bind(&listen).await?;
        loop {
            let (mut client, _) = listener.accept().await?;
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    })
}
