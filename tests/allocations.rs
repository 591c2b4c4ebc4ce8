//! The hot-path rule on the whole gateway: an HTTP/1.1 REST request allocates nothing on its
//! shard beyond its bodies (`switchyard_shard_allocations_total`, counted by the binary's
//! allocator). The allocation bench checks the socket-free pieces stage by stage; this checks the
//! real binary on real sockets, with everything between them: router, balancer, pool, HTTP/2
//! client, executor.

mod support;

use support::*;

/// Requests measured: enough that one stray allocation per request (≥ 1 each) stands far above
/// what is not per request (a connection's buffers, the executor's timers around sleeps).
const REQUESTS: u64 = 2_000;
/// Requests first, so the connections, pools and buffers exist before counting starts.
const WARM_UP: u64 = 200;
/// Most allocations per request allowed, on average. The gateway makes a few per sleep of its
/// executor (timers), and a closed-loop client makes it sleep about twice per request; a
/// per-request allocation anywhere on the path adds at least 1.
const MAX_PER_REQUEST: f64 = 0.5;

/// The shards' allocation count, read on `conn` (its own request allocates; see the caller).
fn allocations(conn: &mut RawConn) -> u64 {
    conn.send(b"GET /-/metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = conn.read_response(false);
    assert_eq!(r.status, 200);
    let text = r.text();
    text.lines()
        .find_map(|l| l.strip_prefix("switchyard_shard_allocations_total "))
        .expect("switchyard_shard_allocations_total in /-/metrics")
        .parse()
        .expect("a count")
}

fn get(conn: &mut RawConn, n: u64) {
    for _ in 0..n {
        conn.send(b"GET /echo/hello HTTP/1.1\r\nHost: x\r\nX-Request-Id: client-id-1\r\n\r\n");
        let r = conn.read_response(false);
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[test]
fn a_rest_request_allocates_nothing_on_its_shard() {
    let gw = Gateway::builder().shards(Some(1)).start();
    let _echo = Echo::registered(&gw, "echo", "e1");
    let mut conn = RawConn::connect(gw.addr);
    get(&mut conn, WARM_UP);
    // What a scrape itself allocates between two readings, to take out of the measured span
    // (which has one scrape in it too).
    let a0 = allocations(&mut conn);
    let a1 = allocations(&mut conn);
    get(&mut conn, REQUESTS);
    let a2 = allocations(&mut conn);
    let scrape = a1 - a0;
    let per_request = (a2 - a1).saturating_sub(scrape) as f64 / REQUESTS as f64;
    eprintln!("scrape: {scrape} allocations; requests: {per_request:.3} per request");
    assert!(
        per_request <= MAX_PER_REQUEST,
        "{per_request:.3} allocations per REST request (scrape {scrape}, span {})",
        a2 - a1
    );
    // The counter counts: the scrape's own rendering allocates.
    assert!(scrape > 0, "the counter did not move over a scrape");
}
