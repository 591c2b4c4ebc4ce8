mod error;
mod framed_read;
mod framed_write;

pub use self::error::{SendError, UserError};

use self::framed_read::{FrameSplitter, FramedRead};
use self::framed_write::FramedWrite;

use crate::frame::{self, Data, Frame};
use crate::proto::Error;

use bytes::Buf;
use futures_core::Stream;
use futures_sink::Sink;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

use std::io;

/// switchyard patch: the read buffer's first capacity unless told otherwise: tokio-util's
/// default, what every connection used before.
const DEFAULT_READ_CAPACITY: usize = 8 * 1024;

#[derive(Debug)]
pub struct Codec<T, B> {
    inner: FramedRead<FramedWrite<T, B>>,
}

impl<T, B> Codec<T, B>
where
    T: AsyncRead + AsyncWrite + Unpin,
    B: Buf,
{
    /// Returns a new `Codec` with the default max frame size
    #[inline]
    pub fn new(io: T) -> Self {
        Self::with_max_recv_frame_size(io, frame::DEFAULT_MAX_FRAME_SIZE as usize)
    }

    /// Returns a new `Codec` with the given maximum frame size
    pub fn with_max_recv_frame_size(io: T, max_frame_size: usize) -> Self {
        Self::with_capacities(io, max_frame_size, DEFAULT_READ_CAPACITY, 0)
    }

    /// switchyard patch: a `Codec` whose read buffer starts at `read_capacity` bytes and whose
    /// write buffer holds `write_capacity` (at least FramedWrite's default).
    ///
    /// Received frames are split off the read buffer and stay referenced until the
    /// application is done with them, so once the buffer is full it is rarely the sole owner
    /// of its memory and the next frame's reservation allocates a new buffer of the size the
    /// first one had. A client carrying many concurrent calls with bodies of some KiB (a
    /// gateway's connection to a backend) reallocated about once per 4 KiB answer at 8 KiB.
    /// Frames queued while the write buffer has room leave in one write, so its size bounds how
    /// many calls share one.
    pub fn with_capacities(
        io: T,
        max_frame_size: usize,
        read_capacity: usize,
        write_capacity: usize,
    ) -> Self {
        // Wrap with writer
        let framed_write = FramedWrite::with_capacity(io, write_capacity);

        // Delimit the frames (switchyard patch: with h2's own splitter, see `FrameSplitter`;
        // the limit is set below).
        let codec = FrameSplitter::new(frame::DEFAULT_MAX_FRAME_SIZE as usize);
        let delimited =
            tokio_util::codec::FramedRead::with_capacity(framed_write, codec, read_capacity);

        let mut inner = FramedRead::new(delimited);

        // Use FramedRead's method since it checks the value is within range.
        inner.set_max_frame_size(max_frame_size);

        Codec { inner }
    }
}

impl<T, B> Codec<T, B> {
    /// Updates the max received frame size.
    ///
    /// The change takes effect the next time a frame is decoded. In other
    /// words, if a frame is currently in process of being decoded with a frame
    /// size greater than `val` but less than the max frame size in effect
    /// before calling this function, then the frame will be allowed.
    #[inline]
    pub fn set_max_recv_frame_size(&mut self, val: usize) {
        self.inner.set_max_frame_size(val)
    }

    /// Returns the current max received frame size setting.
    ///
    /// This is the largest size this codec will accept from the wire. Larger
    /// frames will be rejected.
    #[cfg(feature = "unstable")]
    #[inline]
    pub fn max_recv_frame_size(&self) -> usize {
        self.inner.max_frame_size()
    }

    /// Returns the max frame size that can be sent to the peer.
    pub fn max_send_frame_size(&self) -> usize {
        self.inner.get_ref().max_frame_size()
    }

    /// Set the peer's max frame size.
    pub fn set_max_send_frame_size(&mut self, val: usize) {
        self.framed_write().set_max_frame_size(val)
    }

    /// Set the peer's header table size size.
    pub fn set_send_header_table_size(&mut self, val: usize) {
        self.framed_write().set_header_table_size(val)
    }

    /// Set the decoder header table size size.
    pub fn set_recv_header_table_size(&mut self, val: usize) {
        self.inner.set_header_table_size(val)
    }

    /// Set the max header list size that can be received.
    pub fn set_max_recv_header_list_size(&mut self, val: usize) {
        self.inner.set_max_header_list_size(val);
    }

    /// switchyard patch: see `FramedRead::is_header_block_open`.
    pub(crate) fn is_header_block_open(&self) -> bool {
        self.inner.is_header_block_open()
    }

    /// Get a reference to the inner stream.
    #[cfg(feature = "unstable")]
    pub fn get_ref(&self) -> &T {
        self.inner.get_ref().get_ref()
    }

    /// Get a mutable reference to the inner stream.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut().get_mut()
    }

    /// Takes the data payload value that was fully written to the socket
    pub(crate) fn take_last_data_frame(&mut self) -> Option<Data<B>> {
        self.framed_write().take_last_data_frame()
    }

    fn framed_write(&mut self) -> &mut FramedWrite<T, B> {
        self.inner.get_mut()
    }
}

impl<T, B> Codec<T, B>
where
    T: AsyncWrite + Unpin,
    B: Buf,
{
    /// Returns `Ready` when the codec can buffer a frame
    pub fn poll_ready(&mut self, cx: &mut Context) -> Poll<io::Result<()>> {
        self.framed_write().poll_ready(cx)
    }

    /// Returns whether the codec can buffer a frame without flushing the
    /// underlying I/O object.
    pub(crate) fn has_send_capacity(&mut self) -> bool {
        self.framed_write().has_capacity()
    }

    /// Buffer a frame.
    ///
    /// `poll_ready` must be called first to ensure that a frame may be
    /// accepted.
    ///
    /// TODO: Rename this to avoid conflicts with Sink::buffer
    pub fn buffer(&mut self, item: Frame<B>) -> Result<(), UserError> {
        self.framed_write().buffer(item)
    }

    /// Flush buffered data to the wire
    pub fn flush(&mut self, cx: &mut Context) -> Poll<io::Result<()>> {
        self.framed_write().flush(cx)
    }

    /// Shutdown the send half
    pub fn shutdown(&mut self, cx: &mut Context) -> Poll<io::Result<()>> {
        self.framed_write().shutdown(cx)
    }
}

impl<T, B> Stream for Codec<T, B>
where
    T: AsyncRead + Unpin,
{
    type Item = Result<Frame, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl<T, B> Sink<Frame<B>> for Codec<T, B>
where
    T: AsyncWrite + Unpin,
    B: Buf,
{
    type Error = SendError;

    fn start_send(mut self: Pin<&mut Self>, item: Frame<B>) -> Result<(), Self::Error> {
        Codec::buffer(&mut self, item)?;
        Ok(())
    }
    /// Returns `Ready` when the codec can buffer a frame
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.framed_write().poll_ready(cx).map_err(Into::into)
    }

    /// Flush buffered data to the wire
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.framed_write().flush(cx).map_err(Into::into)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}

// TODO: remove (or improve) this
impl<T> From<T> for Codec<T, bytes::Bytes>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn from(src: T) -> Self {
        Self::new(src)
    }
}

// switchyard patch: the test of `Codec::with_capacities`.
#[cfg(test)]
mod switchyard_tests {
    use super::*;

    /// A frame head: payload length, type, flags, stream id.
    fn head(payload: usize, kind: u8, stream: u32) -> Vec<u8> {
        let mut head = (payload as u32).to_be_bytes()[1..].to_vec();
        head.extend([kind, 0]);
        head.extend(stream.to_be_bytes());
        head
    }

    #[test]
    fn frames_are_cut_whole_and_the_buffer_grows_for_the_next() {
        use tokio_util::codec::Decoder;
        let mut splitter = FrameSplitter::new(16_384);
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&head(0, 4, 0));
        buf.extend_from_slice(&head(5, 0, 1));
        buf.extend_from_slice(b"hello");
        buf.extend_from_slice(&head(10_000, 0, 3)[..2]);
        let first = splitter.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&first[..], &head(0, 4, 0)[..]);
        let second = splitter.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&second[9..], b"hello");
        // Two bytes of the next length: wait for the third.
        assert!(splitter.decode(&mut buf).unwrap().is_none());
        buf.clear();
        buf.extend_from_slice(&head(10_000, 0, 3));
        assert!(splitter.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() >= 9 + 10_000, "room for the whole frame");
        // A lower limit from now on does not refuse the frame already under way.
        splitter.set_max_frame_length(1_000);
        buf.extend_from_slice(&[7; 9_999]);
        assert!(splitter.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[7]);
        let third = splitter.decode(&mut buf).unwrap().unwrap();
        assert_eq!(third.len(), 9 + 10_000);
        assert!(buf.is_empty());
        buf.extend_from_slice(&head(1_001, 0, 5));
        assert!(
            splitter.decode(&mut buf).is_err(),
            "the next frame meets the new limit"
        );
    }

    #[test]
    fn a_frame_over_the_maximum_size_is_a_frame_size_error() {
        use tokio::io::AsyncWriteExt;
        let (mut peer, ours) = tokio::io::duplex(1024);
        let mut codec: Codec<_, bytes::Bytes> = Codec::new(ours);
        codec.set_max_recv_frame_size(16_384);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            // Exactly the limit is accepted (its payload has not arrived yet).
            peer.write_all(&head(16_384, 0, 1)).await.unwrap();
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(Pin::new(&mut codec).poll_next(&mut cx).is_pending());
            let (mut peer, ours) = tokio::io::duplex(1024);
            let mut codec: Codec<_, bytes::Bytes> = Codec::new(ours);
            peer.write_all(&head(16_385, 0, 1)).await.unwrap();
            match Pin::new(&mut codec).poll_next(&mut cx) {
                Poll::Ready(Some(Err(Error::GoAway(_, reason, _)))) => {
                    assert_eq!(reason, crate::frame::Reason::FRAME_SIZE_ERROR)
                }
                other => panic!("expected a FRAME_SIZE_ERROR, got {other:?}"),
            }
        });
    }

    /// A header block whose first fragment holds a malformed field and whose CONTINUATION
    /// follows resets its stream once the block is whole; the next stream's HEADERS is read
    /// as usual. (The stream was reset at once, and the CONTINUATION, left without a block,
    /// ended the connection.)
    #[test]
    fn a_malformed_field_before_a_continuation_resets_the_stream_after_the_block() {
        use tokio::io::AsyncWriteExt;
        fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
            let mut frame = head(payload.len(), kind, stream);
            frame[4] = flags;
            frame.extend_from_slice(payload);
            frame
        }
        // :method GET, :scheme http, :path / (indexed), :authority x (without indexing).
        let pseudo = [0x82, 0x86, 0x84, 0x01, 1, b'x'];
        let mut first = pseudo.to_vec();
        first.extend([0x40, 5, b'X', b'-', b'B', b'a', b'd', 1, b'1']);
        let mut bytes = frame(1, 0x1, 1, &first); // HEADERS, END_STREAM
        bytes.extend(frame(9, 0x4, 1, &[0x00, 1, b'y', 1, b'2'])); // CONTINUATION, END_HEADERS
        bytes.extend(frame(1, 0x5, 3, &pseudo)); // HEADERS, END_STREAM | END_HEADERS
        let (mut peer, ours) = tokio::io::duplex(1024);
        let mut codec: Codec<_, bytes::Bytes> = Codec::new(ours);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            peer.write_all(&bytes).await.unwrap();
            let mut cx = Context::from_waker(std::task::Waker::noop());
            match Pin::new(&mut codec).poll_next(&mut cx) {
                Poll::Ready(Some(Err(Error::Reset(id, reason, _)))) => {
                    assert_eq!(u32::from(id), 1);
                    assert_eq!(reason, crate::frame::Reason::PROTOCOL_ERROR);
                }
                other => panic!("expected stream 1 reset, got {other:?}"),
            }
            match Pin::new(&mut codec).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(Frame::Headers(h)))) => {
                    assert_eq!(u32::from(h.stream_id()), 3)
                }
                other => panic!("expected stream 3's HEADERS, got {other:?}"),
            }
        });
    }

    /// A HEADERS frame without END_HEADERS opens a header block, which stays open until the
    /// CONTINUATION that ends it: the application times that wait.
    #[test]
    fn a_header_block_is_open_from_its_headers_to_its_last_continuation() {
        use tokio::io::AsyncWriteExt;
        fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
            let mut frame = head(payload.len(), kind, 1);
            frame[4] = flags;
            frame.extend_from_slice(payload);
            frame
        }
        // :method GET, :scheme http, :path / (indexed), then :authority x (without indexing).
        let (first, last) = ([0x82, 0x86, 0x84], [0x01, 1, b'x']);
        let (mut peer, ours) = tokio::io::duplex(1024);
        let mut codec: Codec<_, bytes::Bytes> = Codec::new(ours);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(!codec.is_header_block_open());
            peer.write_all(&frame(1, 0x1, &first)).await.unwrap(); // HEADERS, END_STREAM
            assert!(Pin::new(&mut codec).poll_next(&mut cx).is_pending());
            assert!(codec.is_header_block_open(), "open after its HEADERS");
            peer.write_all(&frame(9, 0x4, &last)).await.unwrap(); // CONTINUATION, END_HEADERS
            match Pin::new(&mut codec).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(Frame::Headers(h)))) => assert!(h.is_end_headers()),
                other => panic!("expected the whole HEADERS, got {other:?}"),
            }
            assert!(!codec.is_header_block_open(), "closed by its last CONTINUATION");
        });
    }

    #[test]
    fn the_read_buffer_starts_at_the_capacity_asked_for() {
        let (a, b) = tokio::io::duplex(64);
        let client: Codec<_, bytes::Bytes> = Codec::with_capacities(a, 16_384, 64 * 1024, 0);
        assert!(client.inner.read_capacity() >= 64 * 1024);
        let server: Codec<_, bytes::Bytes> = Codec::new(b);
        let default = server.inner.read_capacity();
        assert!((DEFAULT_READ_CAPACITY..64 * 1024).contains(&default));
    }

    #[test]
    fn the_write_buffer_holds_the_capacity_asked_for() {
        let (a, b) = tokio::io::duplex(64);
        let client: Codec<_, bytes::Bytes> = Codec::with_capacities(a, 16_384, 0, 64 * 1024);
        assert!(client.inner.get_ref().write_capacity() >= 64 * 1024);
        let server: Codec<_, bytes::Bytes> = Codec::new(b);
        let default = server.inner.get_ref().write_capacity();
        assert!((16 * 1024..64 * 1024).contains(&default));
    }
}
