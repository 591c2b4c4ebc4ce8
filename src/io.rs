//! Adapters between glommio's `futures-io` streams and the tokio I/O traits that `h2` is written against.
//!
//! `h2` only needs `tokio::io::{AsyncRead, AsyncWrite}`; it never touches a tokio runtime, so a thin
//! adapter lets it run on glommio's io_uring sockets. Errors are passed through unchanged: a read error
//! must reach h2 as an error (and so become a 502 or a closed stream), never a silent end of stream.
//!
//! Reads land straight in the caller's memory where it has room for the whole read: glommio's
//! socket reads into memory not yet initialised ([`ReadUninit`]), so neither the reader's spare
//! capacity is zeroed nor the received bytes copied. Safe Rust cannot hand a `futures-io` reader
//! uninitialised memory, and zeroing the destination's free space before every read (h2's read
//! buffer hands over up to 64 KiB of fresh space each time, the HTTP/1.1 reader 8 KiB) cost more
//! than the request's own bytes; hence the trait.
//!
//! A read with less room than it wants goes through [`poll_read_into`]: each shard thread keeps
//! one buffer, zeroed once, that such reads land in, and only the bytes received are copied out.
//! A read through [`TokioIo`] takes up to [`READ_AHEAD`] bytes even when the caller offered less
//! room: tokio-util hands h2 the free tail of its buffer, so a 4 KiB answer arrived in two `recv`s,
//! the second for the couple of hundred bytes that did not fit. The overflow waits in the adapter
//! and is handed out before the socket is read again.

use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncWrite};
use tokio::io::ReadBuf;

/// Size of a shard thread's read buffer: the largest single read (a body chunk).
pub const SCRATCH_LEN: usize = 16 << 10;

/// Least one read through [`TokioIo`] takes from the socket, whatever room the caller offered:
/// a small answer (a few KiB of body with its frame heads and trailers) arrives in one read.
pub const READ_AHEAD: usize = 8 << 10;

/// Overflow storage a connection keeps once it is handed out: the usual overflow, an answer's
/// last few hundred bytes, reuses it; a larger one's is freed, so an idle connection holds no
/// more than this for it.
const AHEAD_KEEP: usize = 1 << 10;

/// A stream whose reads can land in memory that is not initialised yet.
///
/// # Safety
///
/// `poll_read_uninit` returning `Ready(Ok(n))` must have written the first `n` bytes of `buf`
/// (`n <= buf.len()`): callers take them as initialised.
pub unsafe trait ReadUninit: AsyncRead + Unpin {
    /// Reads into `buf` as [`AsyncRead::poll_read`] does. The default zeroes `buf` first and
    /// then reads into it; a stream that can do better overrides it.
    fn poll_read_uninit(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        for byte in buf.iter_mut() {
            byte.write(0);
        }
        // SAFETY: every byte was just initialised.
        let buf = unsafe { &mut *(buf as *mut [MaybeUninit<u8>] as *mut [u8]) };
        let len = buf.len();
        Pin::new(self).poll_read(cx, buf).map_ok(|n| n.min(len))
    }
}

// SAFETY: glommio's `poll_read_uninit` writes the bytes it reports received, and only those.
unsafe impl ReadUninit for glommio::net::TcpStream {
    fn poll_read_uninit(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        glommio::net::TcpStream::poll_read_uninit(self, cx, buf)
    }
}

thread_local! {
    /// The shard thread's read buffer (see the module docs). Borrowed only within one poll.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}

/// Polls one read of at most `max` bytes (and at most [`SCRATCH_LEN`]) from `stream` and hands the
/// bytes received to `deliver`. `Ready(Ok(0))` is the end of the stream (or `max` of zero).
pub fn poll_read_into<S: AsyncRead + Unpin>(
    stream: &mut S,
    cx: &mut Context<'_>,
    max: usize,
    deliver: impl FnOnce(&[u8]),
) -> Poll<io::Result<usize>> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let room = max.min(scratch.len());
        match Pin::new(stream).poll_read(cx, &mut scratch[..room]) {
            Poll::Ready(Ok(n)) => {
                deliver(&scratch[..n]);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    })
}

/// Reads at most `max` bytes from `stream` and appends them to `buf`: straight into `buf`'s spare
/// capacity when it has room for `max` bytes, or can take it back from its allocation without
/// allocating (`BytesMut::try_reclaim`: a connection's buffer whose earlier requests were split
/// off and have been dropped), else through the shard's read buffer (so that a read that finds
/// little never grows `buf` by `max`).
pub async fn read_append<S: ReadUninit>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        if buf.capacity() - buf.len() < max && !buf.try_reclaim(max) {
            return poll_read_into(stream, cx, max, |bytes| buf.extend_from_slice(bytes));
        }
        let n =
            std::task::ready!(stream.poll_read_uninit(cx, &mut buf.spare_capacity_mut()[..max]))?;
        // SAFETY: the stream wrote the first `n` bytes of the spare capacity (`ReadUninit`).
        unsafe { buf.set_len(buf.len() + n) };
        Poll::Ready(Ok(n))
    })
    .await
}

/// Writes `head`, then `body`, whole: one vectored send for both as long as the socket takes
/// them, so a large body goes out from where it lies instead of being copied behind its head.
pub async fn write_all_two<S: AsyncWrite + Unpin>(
    stream: &mut S,
    mut head: &[u8],
    mut body: &[u8],
) -> io::Result<()> {
    while !head.is_empty() || !body.is_empty() {
        let parts = [io::IoSlice::new(head), io::IoSlice::new(body)];
        let n = std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_write_vectored(cx, &parts))
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

/// Wraps a `futures-io` stream so that it implements tokio's I/O traits.
///
/// Bytes already read from the stream (for example the HTTP/2 connection preface that was read to
/// tell HTTP/1.1 from HTTP/2, or what a read brought beyond the caller's room) are replayed first.
#[derive(Debug)]
pub struct TokioIo<S> {
    inner: S,
    /// Bytes read from `inner` (or handed over at the start), handed out from `replay_pos` on.
    replay: Vec<u8>,
    replay_pos: usize,
}

impl<S> TokioIo<S> {
    /// Adapts `inner` as it is.
    pub fn new(inner: S) -> Self {
        Self::with_replay(inner, Bytes::new())
    }

    /// Adapts `inner`, handing out `replay` before anything read from `inner`.
    pub fn with_replay(inner: S, replay: Bytes) -> Self {
        Self {
            inner,
            replay: replay.to_vec(),
            replay_pos: 0,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: ReadUninit> tokio::io::AsyncRead for TokioIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replay_pos < this.replay.len() {
            let rest = &this.replay[this.replay_pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replay_pos += n;
            if this.replay_pos == this.replay.len() {
                this.replay_pos = 0;
                this.replay.clear();
                if this.replay.capacity() > AHEAD_KEEP {
                    this.replay = Vec::new();
                }
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= READ_AHEAD {
            // SAFETY: the read only writes received bytes into the unfilled part.
            let unfilled = unsafe { buf.unfilled_mut() };
            let n = std::task::ready!(this.inner.poll_read_uninit(cx, unfilled))?;
            // SAFETY: the stream wrote the first `n` unfilled bytes (`ReadUninit`).
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        // Not `buf.initialize_unfilled()`: h2 (through tokio-util) hands over a fresh `ReadBuf`
        // for every read, so that would zero all of its free space each time.
        let max = buf.remaining().max(READ_AHEAD);
        let replay = &mut this.replay;
        poll_read_into(&mut this.inner, cx, max, |bytes| {
            let (now, later) = bytes.split_at(bytes.len().min(buf.remaining()));
            buf.put_slice(now);
            replay.extend_from_slice(later);
        })
        .map_ok(|_| ())
    }
}

impl<S: AsyncWrite + Unpin> tokio::io::AsyncWrite for TokioIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    /// h2 hands a DATA frame's payload over beside the buffer holding the frames before it: the
    /// stream sends them with one `sendmsg` (the vendored glommio's `TcpStream` does; a stream
    /// without a vectored write of its own sends the first buffer).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// Collects the DATA frames of an h2 body: a body that arrived in one frame (the common case) is
/// kept as that frame's bytes, without a copy; several frames are joined.
#[derive(Debug, Default)]
pub struct BodyCollector {
    single: Option<Bytes>,
    joined: BytesMut,
    /// The whole body's length, when announced: the joined copy is made that size at once.
    expected: usize,
}

impl BodyCollector {
    /// Bytes collected so far.
    pub fn len(&self) -> usize {
        self.single.as_ref().map_or(0, Bytes::len) + self.joined.len()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Announces the whole body's length, so that a body in several frames is joined into one
    /// allocation of that size instead of one grown by doubling (a 4 MiB answer in 16 KiB frames
    /// was copied about twice over, in eight reallocations). Only a hint: a body of another
    /// length is still collected whole. For a length already checked and paid for: an answer's
    /// gRPC length prefix once its share of the budget is taken, or a client's content-length
    /// once it is within the body limit and held against the shard's body memory. The joined
    /// buffer is made at the second frame, when bytes have begun to arrive, and its pages become
    /// resident only as they are written, so a client that declares a length and sends little
    /// does not make the gateway hold the rest.
    pub fn expect(&mut self, len: usize) {
        self.expected = len;
    }

    /// Adds one frame's bytes.
    pub fn push(&mut self, chunk: Bytes) {
        match self.single.take() {
            None if self.joined.is_empty() => self.single = Some(chunk),
            first => {
                if let Some(first) = first {
                    let joined = first.len() + chunk.len();
                    self.joined.reserve(self.expected.max(joined));
                    self.joined.extend_from_slice(&first);
                }
                self.joined.extend_from_slice(&chunk);
            }
        }
    }

    /// The bytes collected so far.
    pub fn as_slice(&self) -> &[u8] {
        self.single.as_deref().unwrap_or(&self.joined)
    }

    /// The whole body.
    pub fn into_bytes(self) -> Bytes {
        self.single.unwrap_or_else(|| self.joined.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future as _;
    use std::task::Waker;

    /// A stream that yields each of its chunks in one read, then ends (or fails with `end`); it
    /// counts the reads, and of them those into the caller's memory.
    struct Chunks {
        chunks: Vec<&'static [u8]>,
        end: Option<io::ErrorKind>,
        reads: usize,
        in_place: usize,
    }

    impl Chunks {
        fn new(chunks: Vec<&'static [u8]>, end: Option<io::ErrorKind>) -> Self {
            Chunks {
                chunks,
                end,
                reads: 0,
                in_place: 0,
            }
        }
    }

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.reads += 1;
            if self.chunks.is_empty() {
                return Poll::Ready(self.end.map_or(Ok(0), |kind| Err(kind.into())));
            }
            let chunk = self.chunks.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Poll::Ready(Ok(chunk.len()))
        }
    }

    // SAFETY: writes exactly the bytes it reports, as `poll_read` does.
    unsafe impl ReadUninit for Chunks {
        fn poll_read_uninit(
            &mut self,
            cx: &mut Context<'_>,
            buf: &mut [MaybeUninit<u8>],
        ) -> Poll<io::Result<usize>> {
            self.in_place += 1;
            let mut staged = vec![0; buf.len()];
            let read = Pin::new(&mut *self).poll_read(cx, &mut staged);
            if let Poll::Ready(Ok(n)) = read {
                for (to, from) in buf.iter_mut().zip(&staged[..n]) {
                    to.write(*from);
                }
            }
            read
        }
    }

    fn read_once<S: ReadUninit>(io: &mut TokioIo<S>) -> io::Result<Vec<u8>> {
        let mut storage = [0u8; 64];
        let mut buf = ReadBuf::new(&mut storage);
        let mut cx = Context::from_waker(Waker::noop());
        match tokio::io::AsyncRead::poll_read(Pin::new(io), &mut cx, &mut buf) {
            Poll::Ready(r) => r.map(|()| buf.filled().to_vec()),
            Poll::Pending => panic!("test stream never pends"),
        }
    }

    /// A stream with endless data that records how much room each read offered.
    #[derive(Default)]
    struct Offered(Vec<usize>);

    impl AsyncRead for Offered {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.0.push(buf.len());
            buf.fill(b'z');
            Poll::Ready(Ok(buf.len()))
        }
    }

    // SAFETY: the default read zeroes the buffer first.
    unsafe impl ReadUninit for Offered {}

    #[test]
    fn reads_append_what_arrived_and_never_more_than_asked() {
        let mut stream = Offered::default();
        let mut buf = BytesMut::from(&b"ab"[..]);
        let mut cx = Context::from_waker(Waker::noop());
        let mut append = |stream: &mut Offered, buf: &mut BytesMut, max| match poll_read_into(
            stream,
            &mut cx,
            max,
            |b| buf.extend_from_slice(b),
        ) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => panic!("test stream never pends"),
        };
        assert_eq!(append(&mut stream, &mut buf, 3), 3);
        assert_eq!(&buf[..], b"abzzz");
        // One read never takes more than the shard's read buffer holds.
        assert_eq!(append(&mut stream, &mut buf, 1 << 20), SCRATCH_LEN);
        assert_eq!(buf.len(), 5 + SCRATCH_LEN);
        assert_eq!(stream.0, [3, SCRATCH_LEN]);
    }

    #[test]
    fn a_read_takes_what_arrived_and_hands_out_the_overflow_before_reading_again() {
        let first: &'static [u8] = Box::leak(vec![b'a'; 100].into_boxed_slice());
        let mut io = TokioIo::new(Chunks::new(vec![first, b"bc"], None));
        // The caller has room for 64 bytes: one read takes all 100 and keeps 36.
        assert_eq!(read_once(&mut io).unwrap(), vec![b'a'; 64]);
        assert_eq!(io.get_ref().reads, 1);
        assert_eq!(read_once(&mut io).unwrap(), vec![b'a'; 36]);
        assert_eq!(io.get_ref().reads, 1, "the overflow came without a read");
        assert_eq!(read_once(&mut io).unwrap(), b"bc");
        assert_eq!(
            read_once(&mut io).unwrap(),
            b"",
            "then the end of the stream"
        );
        assert_eq!(io.get_ref().reads, 3);
        // A small overflow's storage is kept for the next one.
        assert!(io.replay.capacity() > 0);
        // A read never takes more than the read-ahead bound; a large overflow's storage is
        // freed once it has been handed out.
        let mut io = TokioIo::new(Offered::default());
        assert_eq!(read_once(&mut io).unwrap(), vec![b'z'; 64]);
        assert_eq!(io.get_ref().0, [READ_AHEAD]);
        for _ in 0..(READ_AHEAD - 64).div_ceil(64) {
            assert_eq!(read_once(&mut io).unwrap(), vec![b'z'; 64]);
        }
        assert_eq!(
            io.get_ref().0,
            [READ_AHEAD],
            "all of it came from the overflow"
        );
        assert_eq!(io.replay.capacity(), 0);
    }

    #[test]
    fn a_read_with_room_for_the_read_ahead_goes_straight_into_the_callers_memory() {
        let mut io = TokioIo::new(Offered::default());
        let mut storage = vec![MaybeUninit::<u8>::uninit(); 3 * READ_AHEAD];
        let mut buf = ReadBuf::uninit(&mut storage);
        let mut cx = Context::from_waker(Waker::noop());
        match tokio::io::AsyncRead::poll_read(Pin::new(&mut io), &mut cx, &mut buf) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => panic!("test stream never pends"),
        }
        assert_eq!(buf.filled(), vec![b'z'; 3 * READ_AHEAD]);
        assert_eq!(io.get_ref().0, [3 * READ_AHEAD], "one read, all the room");
        assert_eq!(
            io.replay.capacity(),
            0,
            "nothing passed through the adapter"
        );
    }

    #[test]
    fn an_append_with_room_reads_into_the_spare_capacity_and_one_without_grows_by_what_came() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut stream = Chunks::new(vec![b"abc", b"defg", b"hi"], None);
        let mut buf = BytesMut::with_capacity(64);
        let at = buf.as_ptr();
        let read = std::pin::pin!(read_append(&mut stream, &mut buf, 64)).poll(&mut cx);
        assert!(matches!(read, Poll::Ready(Ok(3))));
        assert_eq!((&buf[..], buf.as_ptr()), (&b"abc"[..], at));
        assert_eq!(stream.in_place, 1, "read in place");
        // 61 bytes of room for a 100-byte read: through the shard's buffer, growing `buf` by
        // the 4 bytes that came, not by 100.
        let read = std::pin::pin!(read_append(&mut stream, &mut buf, 100)).poll(&mut cx);
        assert!(matches!(read, Poll::Ready(Ok(4))));
        assert_eq!((&buf[..], buf.capacity()), (&b"abcdefg"[..], 64));
        assert_eq!((stream.reads, stream.in_place), (2, 1));
        // The bytes so far split off (a request taken out of a connection's buffer) and
        // dropped: the buffer takes its room back without allocating, and reads in place.
        drop(buf.split());
        assert!(buf.capacity() < 64);
        let read = std::pin::pin!(read_append(&mut stream, &mut buf, 64)).poll(&mut cx);
        assert!(matches!(read, Poll::Ready(Ok(2))));
        assert_eq!(
            (&buf[..], buf.as_ptr()),
            (&b"hi"[..], at),
            "the same allocation"
        );
        assert_eq!((stream.reads, stream.in_place), (3, 2));
    }

    #[test]
    fn socket_reads_land_in_place_and_pass_a_reset_through() {
        use std::io::Write as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let stream = glommio::net::TcpStream::connect(addr).await.unwrap();
                let (mut peer, _) = listener.accept().unwrap();
                peer.write_all(b"hello").unwrap();
                let mut stream = stream;
                let mut buf = BytesMut::with_capacity(64);
                assert_eq!(read_append(&mut stream, &mut buf, 64).await.unwrap(), 5);
                assert_eq!(&buf[..], b"hello");

                peer.write_all(b"world").unwrap();
                let mut io = TokioIo::new(stream);
                let mut storage = vec![MaybeUninit::<u8>::uninit(); READ_AHEAD];
                let mut out = ReadBuf::uninit(&mut storage);
                std::future::poll_fn(|cx| {
                    tokio::io::AsyncRead::poll_read(Pin::new(&mut io), cx, &mut out)
                })
                .await
                .unwrap();
                assert_eq!(out.filled(), b"world");

                // A close with a zero linger resets the connection: the read reports the reset,
                // not an end of stream.
                socket2::SockRef::from(&peer)
                    .set_linger(Some(std::time::Duration::ZERO))
                    .unwrap();
                drop(peer);
                let mut out = ReadBuf::uninit(&mut storage);
                let read = std::future::poll_fn(|cx| {
                    tokio::io::AsyncRead::poll_read(Pin::new(&mut io), cx, &mut out)
                })
                .await;
                assert_eq!(read.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
            });
    }

    /// A sink that records each write call, vectored ones as one.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.0.push(all);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn vectored_writes_reach_the_stream_as_one() {
        use tokio::io::AsyncWrite as _;
        let mut io = TokioIo::new(Writes::default());
        assert!(io.is_write_vectored());
        let mut cx = Context::from_waker(Waker::noop());
        let head = [0u8; 9];
        let payload = vec![7u8; 4096];
        let bufs = [
            io::IoSlice::new(&head),
            io::IoSlice::new(&[]),
            io::IoSlice::new(&payload),
        ];
        let n = match Pin::new(&mut io).poll_write_vectored(&mut cx, &bufs) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => panic!("sink never pends"),
        };
        assert_eq!(n, 9 + 4096);
        assert_eq!(
            io.get_ref().0,
            [[&head[..], &payload[..]].concat()],
            "one send"
        );
    }

    /// A sink that takes at most `step` bytes per write, recording them in order.
    struct Trickle {
        step: usize,
        got: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let step = self.step;
            let taken: Vec<u8> = bufs
                .iter()
                .flat_map(|b| b.iter().copied())
                .take(step)
                .collect();
            self.got.extend_from_slice(&taken);
            self.writes += 1;
            Poll::Ready(Ok(taken.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_head_and_body_written_in_parts_arrive_whole_and_in_order() {
        let head = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        // Parts that end inside the head, at its end, across the seam, and inside the body.
        for step in [1, 7, head.len(), head.len() + 1, 4096, 1 << 20] {
            let mut sink = Trickle {
                step,
                got: Vec::new(),
                writes: 0,
            };
            futures_lite::future::block_on(write_all_two(&mut sink, &head, &body)).unwrap();
            assert_eq!(sink.got, [&head[..], &body[..]].concat(), "step {step}");
            assert_eq!(
                sink.writes,
                (head.len() + body.len()).div_ceil(step),
                "step {step}"
            );
        }
        // A sink that takes nothing is an error, not a loop.
        let mut stuck = Trickle {
            step: 0,
            got: Vec::new(),
            writes: 0,
        };
        let e = futures_lite::future::block_on(write_all_two(&mut stuck, &head, &body));
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn collector_keeps_one_frame_and_joins_several() {
        let one = Bytes::from_static(b"abc");
        let mut c = BodyCollector::default();
        c.push(one.clone());
        assert_eq!(c.len(), 3);
        let body = c.into_bytes();
        assert_eq!(body.as_ptr(), one.as_ptr(), "a single frame is not copied");
        let mut c = BodyCollector::default();
        assert!(c.as_slice().is_empty());
        for part in [&b"ab"[..], b"c", b"de"] {
            c.push(Bytes::copy_from_slice(part));
        }
        assert_eq!(c.as_slice(), b"abcde");
        assert_eq!((c.len(), &c.into_bytes()[..]), (5, &b"abcde"[..]));
        let mut c = BodyCollector::default();
        c.push(one.clone());
        assert_eq!(c.as_slice(), b"abc");
    }

    #[test]
    fn collector_joins_an_announced_body_into_one_allocation() {
        let mut c = BodyCollector::default();
        c.expect(100_000);
        let frame = Bytes::from(vec![7u8; 16_384]);
        c.push(frame.clone());
        c.push(frame.clone());
        let start = c.as_slice().as_ptr();
        for _ in 2..6 {
            c.push(frame.clone());
        }
        c.push(Bytes::from(vec![7u8; 100_000 - 6 * 16_384]));
        assert_eq!(
            c.as_slice().as_ptr(),
            start,
            "never moved to a larger allocation"
        );
        let body = c.into_bytes();
        assert_eq!(body.len(), 100_000);
        assert!(body.iter().all(|&b| b == 7));
        // A body longer than announced is still collected whole.
        let mut c = BodyCollector::default();
        c.expect(3);
        for part in [&b"ab"[..], b"cd", b"ef"] {
            c.push(Bytes::copy_from_slice(part));
        }
        assert_eq!(&c.into_bytes()[..], b"abcdef");
    }

    #[test]
    fn replays_prefix_then_reads_inner_then_passes_errors_through() {
        let mut io = TokioIo::with_replay(
            Chunks::new(vec![b"world"], Some(io::ErrorKind::ConnectionReset)),
            Bytes::from_static(b"hello "),
        );
        assert_eq!(read_once(&mut io).unwrap(), b"hello ");
        assert_eq!(read_once(&mut io).unwrap(), b"world");
        let err = read_once(&mut io).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }
}
