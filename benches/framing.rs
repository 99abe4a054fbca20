//! Criterion bench of the framer: splitting a server reply (RowDescription, many DataRows,
//! CommandComplete, ReadyForQuery) and a pipelined client batch into items.

use blastwall::wire::{encode, Framer, Item};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn server_reply(rows: usize) -> Vec<u8> {
    let mut out = encode(b'T', &[0u8; 40]).to_vec();
    for _ in 0..rows {
        out.extend_from_slice(&encode(b'D', &[7u8; 90]));
    }
    out.extend_from_slice(&encode(b'C', b"SELECT 100\0"));
    out.extend_from_slice(&encode(b'Z', b"I"));
    out
}

fn client_batch(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend_from_slice(&encode(b'B', &[0u8; 30]));
        out.extend_from_slice(&encode(b'E', &[0, 0, 0, 0, 0]));
    }
    out.extend_from_slice(&encode(b'S', &[]));
    out
}

fn drain(bytes: &[u8], inspect: fn(u8) -> bool) -> usize {
    let mut f = Framer::new(64 << 20);
    f.buf_mut().extend_from_slice(bytes);
    let mut n = 0;
    while let Ok(Some(item)) = f.next_item(inspect) {
        n += match item {
            Item::Frame(fr) => fr.bytes.len(),
            Item::Pass(b) => b.len(),
        };
    }
    n
}

fn bench(c: &mut Criterion) {
    let reply = server_reply(100);
    let mut g = c.benchmark_group("framing");
    g.throughput(Throughput::Bytes(reply.len() as u64));
    g.bench_function("server_reply_100_rows", |b| {
        b.iter(|| drain(black_box(&reply), |t| matches!(t, b'Z' | b'S' | b'K')))
    });
    let batch = client_batch(50);
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("client_batch_50_bind_execute", |b| b.iter(|| drain(black_box(&batch), |t| t != b'd')));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
