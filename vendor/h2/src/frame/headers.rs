use super::{util, StreamDependency, StreamId};
use crate::ext::Protocol;
use crate::frame::{Error, Frame, Head, Kind};
use crate::hpack::{self, BytesStr};

use http::header::{self, HeaderName, HeaderValue};
use http::{uri, HeaderMap, Method, Request, StatusCode, Uri};

use bytes::{Buf, BufMut, BytesMut};

use std::fmt;
use std::io::Cursor;
use std::ops::{ControlFlow, Deref};
use std::sync::Arc;

type EncodeBuf<'a> = bytes::buf::Limit<&'a mut BytesMut>;

const MAX_HEADER_LIST_ABUSE_MULTIPLIER: usize = 4;

/// Header frame
///
/// This could be either a request or a response.
#[derive(Eq, PartialEq)]
pub struct Headers {
    /// The ID of the stream with which this frame is associated.
    stream_id: StreamId,

    /// The stream dependency information, if any.
    stream_dep: Option<StreamDependency>,

    /// The header block fragment
    ///
    /// switchyard patch: boxed. The block (pseudo-header fields and a `HeaderMap`, ~260 bytes)
    /// made every `Frame` ~300 bytes, and a frame is moved several times between being built
    /// and written (into a stream's send queue, out of it, into the codec), each move a
    /// `memcpy` of the whole enum; boxed, a `Frame` is 64 bytes, for one allocation per
    /// HEADERS frame.
    ///
    /// switchyard patch, later: or shared with other frames (see `SharedBlock`).
    header_block: Block,

    /// The associated flags
    flags: HeadersFlag,
}

/// switchyard patch: a HEADERS frame's block, its own or shared; or, for a received frame not
/// decoded yet, none: a frame whose bytes repeat a remembered block shares that block, and
/// would only free a box made for it.
#[derive(Debug)]
enum Block {
    Own(Box<HeaderBlock>),
    Shared(SharedBlock),
    Empty,
}

/// Blocks are equal when what they hold is, however they hold it.
impl PartialEq for Block {
    fn eq(&self, other: &Block) -> bool {
        **self == **other
    }
}

impl Eq for Block {}

/// switchyard patch: a request's header block (pseudo-header fields and header fields), built
/// once and sent on many streams: `Headers::shared` makes a frame of it with no allocation, and
/// the encoder compares it with its remembered blocks in place. A client that sends the same
/// request headers on every stream (a gRPC client's) otherwise rebuilds them per stream: a
/// `HeaderMap` clone, the `:path` and `:authority` copied out of the `Uri`, a box for the block,
/// and the frees of all of them once it is encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedBlock(Arc<HeaderBlock>);

impl SharedBlock {
    /// Whether both are the same block (the same allocation; a block never changes while
    /// shared, so the same block has the same fields).
    pub(crate) fn ptr_eq(&self, other: &SharedBlock) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for Block {
    type Target = HeaderBlock;

    fn deref(&self) -> &HeaderBlock {
        static EMPTY: std::sync::LazyLock<HeaderBlock> =
            std::sync::LazyLock::new(HeaderBlock::empty);
        match self {
            Block::Own(block) => block,
            Block::Shared(block) => &block.0,
            Block::Empty => &EMPTY,
        }
    }
}

/// switchyard patch: the header fields of a received HEADERS frame (a response's or trailers),
/// read in place. A peer that answers every stream with the same indexed blocks (a gRPC server)
/// sends the same bytes again and again; the decoder remembers what they decoded to, and every
/// frame of those bytes shares that one decoding. Reading through this type costs nothing more;
/// a `HeaderMap` of one's own (`into_map`) is a copy of a shared decoding.
#[derive(Debug)]
pub struct ReceivedFields(Block);

impl ReceivedFields {
    /// The fields as a map of one's own (copied if shared).
    pub fn into_map(self) -> HeaderMap {
        self.0.into_inner().fields
    }
}

impl Deref for ReceivedFields {
    type Target = HeaderMap;

    fn deref(&self) -> &HeaderMap {
        &self.0.fields
    }
}

impl Block {
    /// switchyard patch: whether nothing was decoded into the block yet; asked of every received
    /// frame, so an empty one answers without reaching the process-wide empty block.
    fn is_fresh(&self) -> bool {
        match self {
            Block::Empty => true,
            block => HeaderBlock::is_fresh(block),
        }
    }

    /// switchyard patch: the block, shared from now on (it is moved into a reference-counted
    /// allocation if it was the frame's own).
    fn share(&mut self) -> SharedBlock {
        let block = match self {
            Block::Shared(block) => return block.clone(),
            Block::Own(own) => std::mem::replace(&mut **own, HeaderBlock::empty()),
            Block::Empty => HeaderBlock::empty(),
        };
        let shared = SharedBlock(Arc::new(block));
        *self = Block::Shared(shared.clone());
        shared
    }

    /// The block, to change: a shared block is copied first (only a frame being received is
    /// changed, and it shares its block only once its decoding is remembered, so only a
    /// CONTINUATION after a remembered first fragment copies).
    fn to_mut(&mut self) -> &mut HeaderBlock {
        if let Block::Empty = self {
            *self = Block::Own(Box::new(HeaderBlock::empty()));
        }
        match self {
            Block::Own(block) => block,
            Block::Shared(block) => Arc::make_mut(&mut block.0),
            Block::Empty => unreachable!("made its own above"),
        }
    }

    fn into_inner(self) -> HeaderBlock {
        match self {
            Block::Own(block) => *block,
            Block::Shared(block) => Arc::unwrap_or_clone(block.0),
            Block::Empty => HeaderBlock::empty(),
        }
    }

    fn into_encoding(self, encoder: &mut hpack::Encoder) -> EncodingHeaderBlock {
        match self {
            Block::Own(block) => block.into_encoding(encoder),
            Block::Shared(block) => HeaderBlock::shared_into_encoding(block, encoder),
            Block::Empty => HeaderBlock::empty().into_encoding(encoder),
        }
    }
}

#[derive(Copy, Clone, Eq, PartialEq)]
pub struct HeadersFlag(u8);

#[derive(Eq, PartialEq)]
pub struct PushPromise {
    /// The ID of the stream with which this frame is associated.
    stream_id: StreamId,

    /// The ID of the stream being reserved by this PushPromise.
    promised_id: StreamId,

    /// The header block fragment (switchyard patch: boxed, as in `Headers`)
    header_block: Box<HeaderBlock>,

    /// The associated flags
    flags: PushPromiseFlag,
}

#[derive(Copy, Clone, Eq, PartialEq)]
pub struct PushPromiseFlag(u8);

#[derive(Debug)]
pub struct Continuation {
    /// Stream ID of continuation frame
    stream_id: StreamId,

    header_block: EncodingHeaderBlock,
}

// TODO: These fields shouldn't be `pub`
#[derive(Debug, Default, Clone, Eq, PartialEq)]
pub struct Pseudo {
    // Request
    pub method: Option<Method>,
    pub scheme: Option<BytesStr>,
    pub authority: Option<BytesStr>,
    pub path: Option<BytesStr>,
    pub protocol: Option<Protocol>,

    // Response
    pub status: Option<StatusCode>,
}

#[derive(Debug)]
pub struct Iter {
    /// Pseudo headers
    pseudo: Option<Pseudo>,

    /// Header fields
    fields: header::IntoIter<HeaderValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderBlock {
    /// The decoded header fields
    fields: HeaderMap,

    /// Precomputed size of all of our header fields, for perf reasons
    field_size: usize,

    /// Set to true if decoding went over the max header list size.
    is_over_size: bool,

    /// Pseudo headers, these are broken out as they must be sent as part of the
    /// headers frame.
    pseudo: Pseudo,
}

#[derive(Debug)]
struct EncodingHeaderBlock {
    hpack: BytesMut,
}

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const ALL: u8 = END_STREAM | END_HEADERS | PADDED | PRIORITY;

// ===== impl Headers =====

impl Headers {
    /// Create a new HEADERS frame
    pub fn new(stream_id: StreamId, pseudo: Pseudo, fields: HeaderMap) -> Self {
        Headers {
            stream_id,
            stream_dep: None,
            header_block: Block::Own(Box::new(HeaderBlock {
                field_size: calculate_headermap_size(&fields),
                fields,
                is_over_size: false,
                pseudo,
            })),
            flags: HeadersFlag::default(),
        }
    }

    /// switchyard patch: a HEADERS frame on `stream_id` carrying `block` (see `SharedBlock`).
    pub fn shared(stream_id: StreamId, block: &SharedBlock) -> Self {
        Headers {
            stream_id,
            stream_dep: None,
            header_block: Block::Shared(block.clone()),
            flags: HeadersFlag::default(),
        }
    }

    /// switchyard patch: whether this frame's block is shared. A frame to send shares one only
    /// if made by `Headers::shared`, from a `RequestHead`, whose fields were checked once when
    /// it was built; a received frame, with the decoder's memory of a repeated block.
    pub fn is_shared(&self) -> bool {
        matches!(self.header_block, Block::Shared(_))
    }

    /// switchyard patch: this frame's block, to be sent again with `Headers::shared`.
    pub fn into_shared_block(mut self) -> SharedBlock {
        self.header_block.share()
    }

    pub fn trailers(stream_id: StreamId, fields: HeaderMap) -> Self {
        let mut flags = HeadersFlag::default();
        flags.set_end_stream();

        Headers {
            stream_id,
            stream_dep: None,
            header_block: Block::Own(Box::new(HeaderBlock {
                field_size: calculate_headermap_size(&fields),
                fields,
                is_over_size: false,
                pseudo: Pseudo::default(),
            })),
            flags,
        }
    }

    /// Loads the header frame but doesn't actually do HPACK decoding.
    ///
    /// HPACK decoding is done in the `load_hpack` step.
    pub fn load(head: Head, mut src: BytesMut) -> Result<(Self, BytesMut), Error> {
        let flags = HeadersFlag(head.flag());
        let mut pad = 0;

        tracing::trace!("loading headers; flags={:?}", flags);

        if head.stream_id().is_zero() {
            return Err(Error::InvalidStreamId);
        }

        // Read the padding length
        if flags.is_padded() {
            if src.is_empty() {
                return Err(Error::MalformedMessage);
            }
            pad = src[0] as usize;

            // Drop the padding
            src.advance(1);
        }

        // Read the stream dependency
        let stream_dep = if flags.is_priority() {
            if src.len() < 5 {
                return Err(Error::MalformedMessage);
            }
            let stream_dep = StreamDependency::load(&src[..5])?;

            if stream_dep.dependency_id() == head.stream_id() {
                return Err(Error::InvalidDependencyId);
            }

            // Drop the next 5 bytes
            src.advance(5);

            Some(stream_dep)
        } else {
            None
        };

        if pad > 0 {
            if pad > src.len() {
                return Err(Error::TooMuchPadding);
            }

            let len = src.len() - pad;
            src.truncate(len);
        }

        let headers = Headers {
            stream_id: head.stream_id(),
            stream_dep,
            // switchyard patch: no block until decoded (see `Block::Empty`).
            header_block: Block::Empty,
            flags,
        };

        Ok((headers, src))
    }

    pub fn load_hpack(
        &mut self,
        src: &mut BytesMut,
        max_header_list_size: usize,
        decoder: &mut hpack::Decoder,
    ) -> Result<(), Error> {
        // switchyard patch: a fresh block whose bytes were decoded before, on the table as it
        // is now, is what it was then (see `hpack::Decoder::repeated`), and this frame shares
        // that decoding instead of copying it; only a block under the list limit is taken from
        // there, so the size checks of a decoding would have passed.
        if self.header_block.is_fresh() {
            if let Some(block) = decoder.repeated(src) {
                if block.headers_size < max_header_list_size {
                    self.header_block = Block::Shared(block.block.clone());
                    src.advance(src.len());
                    return Ok(());
                }
            }
        }
        let decoded = self
            .header_block
            .to_mut()
            .load(src, max_header_list_size, decoder)?;
        // A block worth remembering is shared with the decoder's memory of it.
        if let Some(decoded) = decoded {
            let block = self.header_block.share();
            decoder.remember(decoded.bytes(), block, decoded.headers_size);
        }
        Ok(())
    }

    pub fn stream_id(&self) -> StreamId {
        self.stream_id
    }

    pub fn is_end_headers(&self) -> bool {
        self.flags.is_end_headers()
    }

    pub fn set_end_headers(&mut self) {
        self.flags.set_end_headers();
    }

    pub fn is_end_stream(&self) -> bool {
        self.flags.is_end_stream()
    }

    pub fn set_end_stream(&mut self) {
        self.flags.set_end_stream()
    }

    pub fn is_over_size(&self) -> bool {
        self.header_block.is_over_size
    }

    // switchyard patch: for the `unstable` frame API only; h2 takes received frames apart with
    // `into_received`.
    #[cfg(feature = "unstable")]
    pub fn into_parts(self) -> (Pseudo, HeaderMap) {
        let block = self.header_block.into_inner();
        (block.pseudo, block.fields)
    }

    #[cfg(feature = "unstable")]
    pub fn pseudo_mut(&mut self) -> &mut Pseudo {
        &mut self.header_block.to_mut().pseudo
    }

    pub(crate) fn pseudo(&self) -> &Pseudo {
        &self.header_block.pseudo
    }

    /// Whether it has status 1xx
    pub(crate) fn is_informational(&self) -> bool {
        self.header_block.pseudo.is_informational()
    }

    pub fn fields(&self) -> &HeaderMap {
        &self.header_block.fields
    }

    // switchyard patch: as `into_parts`.
    #[cfg(feature = "unstable")]
    pub fn into_fields(self) -> HeaderMap {
        self.header_block.into_inner().fields
    }

    /// switchyard patch: a received frame's header fields as they are (shared with the
    /// decoder's memory of a repeated block, or the frame's own), e.g. trailers'.
    pub(crate) fn into_received_fields(self) -> ReceivedFields {
        ReceivedFields(self.header_block)
    }

    /// switchyard patch: `into_received_fields` with the pseudo-header fields (a copy of a
    /// shared block's).
    pub(crate) fn into_received(self) -> (Pseudo, ReceivedFields) {
        let mut block = self.header_block;
        let pseudo = match &mut block {
            Block::Own(own) => std::mem::take(&mut own.pseudo),
            Block::Shared(shared) => shared.0.pseudo.clone(),
            Block::Empty => Pseudo::default(),
        };
        (pseudo, ReceivedFields(block))
    }

    pub fn encode(
        self,
        encoder: &mut hpack::Encoder,
        dst: &mut EncodeBuf<'_>,
    ) -> Option<Continuation> {
        // At this point, the `is_end_headers` flag should always be set
        debug_assert!(self.flags.is_end_headers());

        // Get the HEADERS frame head
        let head = self.head();

        self.header_block
            .into_encoding(encoder)
            .encode(&head, dst, Some(encoder), |_| {})
    }

    fn head(&self) -> Head {
        Head::new(Kind::Headers, self.flags.into(), self.stream_id)
    }
}

impl<T> From<Headers> for Frame<T> {
    fn from(src: Headers) -> Self {
        Frame::Headers(src)
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut builder = f.debug_struct("Headers");
        builder
            .field("stream_id", &self.stream_id)
            .field("flags", &self.flags);

        if let Some(ref protocol) = self.header_block.pseudo.protocol {
            builder.field("protocol", protocol);
        }

        if let Some(ref dep) = self.stream_dep {
            builder.field("stream_dep", dep);
        }

        // `fields` and `pseudo` purposefully not included
        builder.finish()
    }
}

// ===== util =====

#[derive(Debug, PartialEq, Eq)]
pub struct ParseU64Error;

pub fn parse_u64(src: &[u8]) -> Result<u64, ParseU64Error> {
    if src.len() > 19 {
        // At danger for overflow...
        return Err(ParseU64Error);
    }

    let mut ret = 0;

    for &d in src {
        if d < b'0' || d > b'9' {
            return Err(ParseU64Error);
        }

        ret *= 10;
        ret += (d - b'0') as u64;
    }

    Ok(ret)
}

// ===== impl PushPromise =====

#[derive(Debug)]
pub enum PushPromiseHeaderError {
    InvalidContentLength(Result<u64, ParseU64Error>),
    NotSafeAndCacheable,
}

impl PushPromise {
    pub fn new(
        stream_id: StreamId,
        promised_id: StreamId,
        pseudo: Pseudo,
        fields: HeaderMap,
    ) -> Self {
        PushPromise {
            flags: PushPromiseFlag::default(),
            header_block: Box::new(HeaderBlock {
                field_size: calculate_headermap_size(&fields),
                fields,
                is_over_size: false,
                pseudo,
            }),
            promised_id,
            stream_id,
        }
    }

    pub fn validate_request(req: &Request<()>) -> Result<(), PushPromiseHeaderError> {
        use PushPromiseHeaderError::*;
        // The spec has some requirements for promised request headers
        // [https://httpwg.org/specs/rfc7540.html#PushRequests]

        // A promised request "that indicates the presence of a request body
        // MUST reset the promised stream with a stream error"
        for content_length in req.headers().get_all(header::CONTENT_LENGTH) {
            let parsed_length = parse_u64(content_length.as_bytes());
            if parsed_length != Ok(0) {
                return Err(InvalidContentLength(parsed_length));
            }
        }
        // "The server MUST include a method in the :method pseudo-header field
        // that is safe and cacheable"
        if !Self::safe_and_cacheable(req.method()) {
            return Err(NotSafeAndCacheable);
        }

        Ok(())
    }

    fn safe_and_cacheable(method: &Method) -> bool {
        // Cacheable: https://httpwg.org/specs/rfc7231.html#cacheable.methods
        // Safe: https://httpwg.org/specs/rfc7231.html#safe.methods
        method == Method::GET || method == Method::HEAD
    }

    pub fn fields(&self) -> &HeaderMap {
        &self.header_block.fields
    }

    #[cfg(feature = "unstable")]
    pub fn into_fields(self) -> HeaderMap {
        self.header_block.fields
    }

    /// Loads the push promise frame but doesn't actually do HPACK decoding.
    ///
    /// HPACK decoding is done in the `load_hpack` step.
    pub fn load(head: Head, mut src: BytesMut) -> Result<(Self, BytesMut), Error> {
        let flags = PushPromiseFlag(head.flag());
        let mut pad = 0;

        if head.stream_id().is_zero() {
            return Err(Error::InvalidStreamId);
        }

        // Read the padding length
        if flags.is_padded() {
            if src.is_empty() {
                return Err(Error::MalformedMessage);
            }

            // TODO: Ensure payload is sized correctly
            pad = src[0] as usize;

            // Drop the padding
            src.advance(1);
        }

        if src.len() < 5 {
            return Err(Error::MalformedMessage);
        }

        let (promised_id, _) = StreamId::parse(&src[..4]);
        // Drop promised_id bytes
        src.advance(4);

        if pad > 0 {
            if pad > src.len() {
                return Err(Error::TooMuchPadding);
            }

            let len = src.len() - pad;
            src.truncate(len);
        }

        let frame = PushPromise {
            flags,
            header_block: Box::new(HeaderBlock {
                fields: HeaderMap::new(),
                field_size: 0,
                is_over_size: false,
                pseudo: Pseudo::default(),
            }),
            promised_id,
            stream_id: head.stream_id(),
        };
        Ok((frame, src))
    }

    pub fn load_hpack(
        &mut self,
        src: &mut BytesMut,
        max_header_list_size: usize,
        decoder: &mut hpack::Decoder,
    ) -> Result<(), Error> {
        // switchyard patch: a push promise's block is not remembered (see `Headers::load_hpack`).
        self.header_block
            .load(src, max_header_list_size, decoder)
            .map(|_| ())
    }

    pub fn stream_id(&self) -> StreamId {
        self.stream_id
    }

    pub fn promised_id(&self) -> StreamId {
        self.promised_id
    }

    pub fn is_end_headers(&self) -> bool {
        self.flags.is_end_headers()
    }

    pub fn set_end_headers(&mut self) {
        self.flags.set_end_headers();
    }

    pub fn is_over_size(&self) -> bool {
        self.header_block.is_over_size
    }

    pub fn encode(
        self,
        encoder: &mut hpack::Encoder,
        dst: &mut EncodeBuf<'_>,
    ) -> Option<Continuation> {
        // At this point, the `is_end_headers` flag should always be set
        debug_assert!(self.flags.is_end_headers());

        let head = self.head();
        let promised_id = self.promised_id;

        self.header_block
            .into_encoding(encoder)
            .encode(&head, dst, Some(encoder), |dst| {
                dst.put_u32(promised_id.into());
            })
    }

    fn head(&self) -> Head {
        Head::new(Kind::PushPromise, self.flags.into(), self.stream_id)
    }

    /// Consume `self`, returning the parts of the frame
    pub fn into_parts(self) -> (Pseudo, HeaderMap) {
        (self.header_block.pseudo, self.header_block.fields)
    }
}

impl<T> From<PushPromise> for Frame<T> {
    fn from(src: PushPromise) -> Self {
        Frame::PushPromise(src)
    }
}

impl fmt::Debug for PushPromise {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("PushPromise")
            .field("stream_id", &self.stream_id)
            .field("promised_id", &self.promised_id)
            .field("flags", &self.flags)
            // `fields` and `pseudo` purposefully not included
            .finish()
    }
}

// ===== impl Continuation =====

impl Continuation {
    fn head(&self) -> Head {
        Head::new(Kind::Continuation, END_HEADERS, self.stream_id)
    }

    pub fn encode(self, dst: &mut EncodeBuf<'_>) -> Option<Continuation> {
        // Get the CONTINUATION frame head
        let head = self.head();

        self.header_block.encode(&head, dst, None, |_| {})
    }
}

// ===== impl Pseudo =====

impl Pseudo {
    /// switchyard patch: whether no pseudo-header field is set (as in trailers, RFC 9113 §8.1).
    pub fn is_empty(&self) -> bool {
        let Pseudo {
            method,
            scheme,
            authority,
            path,
            protocol,
            status,
        } = self;
        method.is_none()
            && scheme.is_none()
            && authority.is_none()
            && path.is_none()
            && protocol.is_none()
            && status.is_none()
    }

    pub fn request(method: Method, uri: Uri, protocol: Option<Protocol>) -> Self {
        let parts = uri::Parts::from(uri);

        let (scheme, path) = if method == Method::CONNECT && protocol.is_none() {
            (None, None)
        } else {
            let path = parts
                .path_and_query
                .map(|v| BytesStr::from(v.as_str()))
                .unwrap_or(BytesStr::from_static(""));

            let path = if !path.is_empty() {
                path
            } else if method == Method::OPTIONS {
                BytesStr::from_static("*")
            } else {
                BytesStr::from_static("/")
            };

            (parts.scheme, Some(path))
        };

        let mut pseudo = Pseudo {
            method: Some(method),
            scheme: None,
            authority: None,
            path,
            protocol,
            status: None,
        };

        // If the URI includes a scheme component, add it to the pseudo headers
        if let Some(scheme) = scheme {
            pseudo.set_scheme(scheme);
        }

        // If the URI includes an authority component, add it to the pseudo
        // headers
        if let Some(authority) = parts.authority {
            pseudo.set_authority(BytesStr::from(authority.as_str()));
        }

        pseudo
    }

    pub fn response(status: StatusCode) -> Self {
        Pseudo {
            method: None,
            scheme: None,
            authority: None,
            path: None,
            protocol: None,
            status: Some(status),
        }
    }

    #[cfg(feature = "unstable")]
    pub fn set_status(&mut self, value: StatusCode) {
        self.status = Some(value);
    }

    pub fn set_scheme(&mut self, scheme: uri::Scheme) {
        let bytes_str = match scheme.as_str() {
            "http" => BytesStr::from_static("http"),
            "https" => BytesStr::from_static("https"),
            s => BytesStr::from(s),
        };
        self.scheme = Some(bytes_str);
    }

    #[cfg(feature = "unstable")]
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = Some(protocol);
    }

    pub fn set_authority(&mut self, authority: BytesStr) {
        self.authority = Some(authority);
    }

    /// Whether it has status 1xx
    pub(crate) fn is_informational(&self) -> bool {
        self.status
            .map_or(false, |status| status.is_informational())
    }
}

// ===== impl EncodingHeaderBlock =====

impl EncodingHeaderBlock {
    fn encode<F>(
        mut self,
        head: &Head,
        dst: &mut EncodeBuf<'_>,
        encoder: Option<&mut hpack::Encoder>,
        f: F,
    ) -> Option<Continuation>
    where
        F: FnOnce(&mut EncodeBuf<'_>),
    {
        let head_pos = dst.get_ref().len();

        // At this point, we don't know how big the h2 frame will be.
        // So, we write the head with length 0, then write the body, and
        // finally write the length once we know the size.
        head.encode(0, dst);

        let payload_pos = dst.get_ref().len();

        f(dst);

        // Now, encode the header payload
        let continuation = if self.hpack.len() > dst.remaining_mut() {
            let head_part = self.hpack.split_to(dst.remaining_mut());
            dst.put_slice(&head_part);

            Some(Continuation {
                stream_id: head.stream_id(),
                header_block: self,
            })
        } else {
            dst.put_slice(&self.hpack);
            // The block is fully written, so the buffer can be reused by the
            // next frame on this connection.
            if let Some(encoder) = encoder {
                encoder.return_scratch(self.hpack);
            }

            None
        };

        // Compute the header block length
        let payload_len = (dst.get_ref().len() - payload_pos) as u64;

        // Write the frame length
        let payload_len_be = payload_len.to_be_bytes();
        assert!(payload_len_be[0..5].iter().all(|b| *b == 0));
        (dst.get_mut()[head_pos..head_pos + 3]).copy_from_slice(&payload_len_be[5..]);

        if continuation.is_some() {
            // There will be continuation frames, so the `is_end_headers` flag
            // must be unset
            debug_assert!(dst.get_ref()[head_pos + 4] & END_HEADERS == END_HEADERS);

            dst.get_mut()[head_pos + 4] -= END_HEADERS;
        }

        continuation
    }
}

// ===== impl Iter =====

impl Iterator for Iter {
    type Item = hpack::Header<Option<HeaderName>>;

    fn next(&mut self) -> Option<Self::Item> {
        use crate::hpack::Header::*;

        if let Some(ref mut pseudo) = self.pseudo {
            if let Some(method) = pseudo.method.take() {
                return Some(Method(method));
            }

            if let Some(scheme) = pseudo.scheme.take() {
                return Some(Scheme(scheme));
            }

            if let Some(authority) = pseudo.authority.take() {
                return Some(Authority(authority));
            }

            if let Some(path) = pseudo.path.take() {
                return Some(Path(path));
            }

            if let Some(protocol) = pseudo.protocol.take() {
                return Some(Protocol(protocol));
            }

            if let Some(status) = pseudo.status.take() {
                return Some(Status(status));
            }
        }

        self.pseudo = None;

        self.fields
            .next()
            .map(|(name, value)| Field { name, value })
    }
}

// ===== impl HeadersFlag =====

impl HeadersFlag {
    pub fn empty() -> HeadersFlag {
        HeadersFlag(0)
    }

    pub fn load(bits: u8) -> HeadersFlag {
        HeadersFlag(bits & ALL)
    }

    pub fn is_end_stream(&self) -> bool {
        self.0 & END_STREAM == END_STREAM
    }

    pub fn set_end_stream(&mut self) {
        self.0 |= END_STREAM;
    }

    pub fn is_end_headers(&self) -> bool {
        self.0 & END_HEADERS == END_HEADERS
    }

    pub fn set_end_headers(&mut self) {
        self.0 |= END_HEADERS;
    }

    pub fn is_padded(&self) -> bool {
        self.0 & PADDED == PADDED
    }

    pub fn is_priority(&self) -> bool {
        self.0 & PRIORITY == PRIORITY
    }
}

impl Default for HeadersFlag {
    /// Returns a `HeadersFlag` value with `END_HEADERS` set.
    fn default() -> Self {
        HeadersFlag(END_HEADERS)
    }
}

impl From<HeadersFlag> for u8 {
    fn from(src: HeadersFlag) -> u8 {
        src.0
    }
}

impl fmt::Debug for HeadersFlag {
    fn fmt(&self, fmt: &mut fmt::Formatter) -> fmt::Result {
        util::debug_flags(fmt, self.0)
            .flag_if(self.is_end_headers(), "END_HEADERS")
            .flag_if(self.is_end_stream(), "END_STREAM")
            .flag_if(self.is_padded(), "PADDED")
            .flag_if(self.is_priority(), "PRIORITY")
            .finish()
    }
}

// ===== impl PushPromiseFlag =====

impl PushPromiseFlag {
    pub fn empty() -> PushPromiseFlag {
        PushPromiseFlag(0)
    }

    pub fn load(bits: u8) -> PushPromiseFlag {
        PushPromiseFlag(bits & ALL)
    }

    pub fn is_end_headers(&self) -> bool {
        self.0 & END_HEADERS == END_HEADERS
    }

    pub fn set_end_headers(&mut self) {
        self.0 |= END_HEADERS;
    }

    pub fn is_padded(&self) -> bool {
        self.0 & PADDED == PADDED
    }
}

impl Default for PushPromiseFlag {
    /// Returns a `PushPromiseFlag` value with `END_HEADERS` set.
    fn default() -> Self {
        PushPromiseFlag(END_HEADERS)
    }
}

impl From<PushPromiseFlag> for u8 {
    fn from(src: PushPromiseFlag) -> u8 {
        src.0
    }
}

impl fmt::Debug for PushPromiseFlag {
    fn fmt(&self, fmt: &mut fmt::Formatter) -> fmt::Result {
        util::debug_flags(fmt, self.0)
            .flag_if(self.is_end_headers(), "END_HEADERS")
            .flag_if(self.is_padded(), "PADDED")
            .finish()
    }
}

// ===== HeaderBlock =====

/// switchyard patch: the bytes of a whole block that decoded cleanly and left the decoder's table
/// as it was, with the block's size against the header list limit: what the decoder remembers
/// (see `Headers::load_hpack`).
struct Decoded {
    bytes: [u8; hpack::REPEATED_BLOCK_MAX],
    len: usize,
    headers_size: usize,
}

impl Decoded {
    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl HeaderBlock {
    /// switchyard patch: a block with nothing in it (what a received frame starts from).
    fn empty() -> HeaderBlock {
        HeaderBlock {
            fields: HeaderMap::new(),
            field_size: 0,
            is_over_size: false,
            pseudo: Pseudo::default(),
        }
    }

    /// switchyard patch: whether nothing was decoded into the block yet (a received frame's
    /// first fragment).
    fn is_fresh(&self) -> bool {
        self.fields.is_empty()
            && self.field_size == 0
            && !self.is_over_size
            && self.pseudo == Pseudo::default()
    }

    /// Decodes `src` into the block. switchyard patch: returns the block's bytes if the
    /// decoder may remember what they decoded to (a fresh, whole block that decoded cleanly and
    /// left the table as it was, and that the decoder does not remember yet).
    fn load(
        &mut self,
        src: &mut BytesMut,
        max_header_list_size: usize,
        decoder: &mut hpack::Decoder,
    ) -> Result<Option<Decoded>, Error> {
        // The bytes of a block that may be remembered, kept aside: decoding consumes them.
        let copy = (self.is_fresh() && src.len() <= hpack::REPEATED_BLOCK_MAX).then(|| {
            let mut bytes = [0u8; hpack::REPEATED_BLOCK_MAX];
            bytes[..src.len()].copy_from_slice(src);
            (bytes, src.len())
        });
        let changes_before = decoder.table_changes();

        let mut reg = !self.fields.is_empty();
        let mut malformed = false;
        let mut header_list_way_too_large = false;
        let mut headers_size = self.calculate_header_list_size();
        let max_header_list_abuse_size =
            max_header_list_size.saturating_mul(MAX_HEADER_LIST_ABUSE_MULTIPLIER);

        macro_rules! check_size {
            () => {{
                if headers_size > max_header_list_abuse_size {
                    tracing::trace!("load_hpack; header list size over abuse max");
                    header_list_way_too_large = true;
                    ControlFlow::Break(())
                } else {
                    if headers_size >= max_header_list_size && !self.is_over_size {
                        tracing::trace!("load_hpack; header list size over max");
                        self.is_over_size = true;
                    }
                    ControlFlow::Continue(())
                }
            }};
        }

        macro_rules! set_pseudo {
            ($field:ident, $val:expr) => {{
                if reg {
                    tracing::trace!("load_hpack; header malformed -- pseudo not at head of block");
                    malformed = true;
                } else if self.pseudo.$field.is_some() {
                    tracing::trace!("load_hpack; header malformed -- repeated pseudo");
                    malformed = true;
                } else {
                    let __val = $val;
                    headers_size +=
                        decoded_header_size(stringify!($field).len() + 1, __val.as_str().len());
                    if check_size!().is_break() {
                        return ControlFlow::Break(());
                    }
                    if !self.is_over_size {
                        self.pseudo.$field = Some(__val);
                    }
                }
            }};
        }

        let mut cursor = Cursor::new(src);

        // If the header frame is malformed, we still have to continue decoding
        // the headers. A malformed header frame is a stream level error, but
        // the hpack state is connection level. In order to maintain correct
        // state for other streams, the hpack decoding process must complete.
        let res = decoder.decode(&mut cursor, |header| {
            use crate::hpack::Header::*;

            match header {
                Field { name, value } => {
                    // Connection level header fields are not supported and must
                    // result in a protocol error.

                    if name == header::CONNECTION
                        || name == header::TRANSFER_ENCODING
                        || name == header::UPGRADE
                        || name == "keep-alive"
                        || name == "proxy-connection"
                    {
                        tracing::trace!("load_hpack; connection level header");
                        malformed = true;
                    } else if name == header::TE && value != "trailers" {
                        tracing::trace!(
                            "load_hpack; TE header not set to trailers; val={:?}",
                            value
                        );
                        malformed = true;
                    } else {
                        reg = true;

                        let header_size = decoded_header_size(name.as_str().len(), value.len());
                        headers_size += header_size;
                        if check_size!().is_break() {
                            return ControlFlow::Break(());
                        }
                        if !self.is_over_size {
                            self.field_size += header_size;
                            if self.fields.try_append(name, value).is_err() {
                                // HeaderMap capacity exceeded — treat as over-size
                                // so the stream is rejected downstream (RST_STREAM / 431)
                                // instead of panicking on the 24,577th unique header.
                                self.is_over_size = true;
                            }
                        }
                    }
                }
                Authority(v) => set_pseudo!(authority, v),
                Method(v) => set_pseudo!(method, v),
                Scheme(v) => set_pseudo!(scheme, v),
                Path(v) => set_pseudo!(path, v),
                Protocol(v) => set_pseudo!(protocol, v),
                Status(v) => set_pseudo!(status, v),
            }

            ControlFlow::Continue(())
        });

        match res {
            Ok(()) => {}
            Err(e) => {
                tracing::trace!("hpack decoding error; err={:?}", e);
                // switchyard patch: a fragment that ends inside a field needs the next one; a
                // malformed field it held is remembered for the block (it was forgotten, and
                // the message went on without the field).
                if malformed {
                    decoder.mark_malformed();
                }
                return Err(e.into());
            }
        }

        // switchyard patch: a field that is not a valid header field makes the message
        // malformed (a stream error), as the checks above do; it used to fail the decoding,
        // which ended the connection and every other stream on it. Taken once a fragment is
        // decoded to a field's end: one that ends inside a field returned above, and the mark
        // waits for the rest (CONTINUATION frames follow at once, or the connection fails).
        if decoder.take_malformed() {
            tracing::trace!("load_hpack; a field is not a valid header field");
            malformed = true;
        }

        if header_list_way_too_large {
            tracing::trace!("header list way too large; aborting connection");
            return Err(Error::HeaderListWayTooLarge);
        }

        if malformed {
            tracing::trace!("malformed message");
            return Err(Error::MalformedMessage);
        }

        // switchyard patch: a whole block that decoded cleanly and left the table as it was
        // may be remembered (see `Headers::load_hpack`).
        Ok(copy.and_then(|(bytes, len)| {
            let remember = !self.is_over_size
                && decoder.table_changes() == changes_before
                && decoder.repeated(&bytes[..len]).is_none();
            remember.then_some(Decoded {
                bytes,
                len,
                headers_size,
            })
        }))
    }

    /// switchyard patch: `into_encoding` for a shared block: copied from the encoder's remembered
    /// encoding when it is one (the usual case once the table holds its fields; found by
    /// identity once it has been), else encoded from a copy.
    fn shared_into_encoding(
        block: SharedBlock,
        encoder: &mut hpack::Encoder,
    ) -> EncodingHeaderBlock {
        let mut hpack = encoder.take_scratch();
        hpack.clear();
        let HeaderBlock { pseudo, fields, .. } = &*block.0;
        if encoder.encode_repeated(pseudo, fields, Some(&block), &mut hpack) {
            return EncodingHeaderBlock { hpack };
        }
        encoder.return_scratch(hpack);
        Arc::unwrap_or_clone(block.0).into_encoding(encoder)
    }

    fn into_encoding(self, encoder: &mut hpack::Encoder) -> EncodingHeaderBlock {
        let mut hpack = encoder.take_scratch();
        hpack.clear();
        // switchyard patch: a block sent again on an unchanged table is copied from its last
        // encoding (see `hpack::Encoder::encode_repeated`).
        if encoder.encode_repeated(&self.pseudo, &self.fields, None, &mut hpack) {
            return EncodingHeaderBlock { hpack };
        }
        let copy = encoder
            .wants_copy()
            .then(|| (self.pseudo.clone(), self.fields.clone()));
        let headers = Iter {
            pseudo: Some(self.pseudo),
            fields: self.fields.into_iter(),
        };

        encoder.encode(headers, &mut hpack);
        if let Some((pseudo, fields)) = copy {
            encoder.remember(pseudo, fields, &hpack);
        }

        EncodingHeaderBlock { hpack }
    }

    /// Calculates the size of the currently decoded header list.
    ///
    /// According to http://httpwg.org/specs/rfc7540.html#SETTINGS_MAX_HEADER_LIST_SIZE
    ///
    /// > The value is based on the uncompressed size of header fields,
    /// > including the length of the name and value in octets plus an
    /// > overhead of 32 octets for each header field.
    fn calculate_header_list_size(&self) -> usize {
        macro_rules! pseudo_size {
            ($name:ident) => {{
                self.pseudo
                    .$name
                    .as_ref()
                    .map(|m| decoded_header_size(stringify!($name).len() + 1, m.as_str().len()))
                    .unwrap_or(0)
            }};
        }

        pseudo_size!(method)
            + pseudo_size!(scheme)
            + pseudo_size!(status)
            + pseudo_size!(authority)
            + pseudo_size!(path)
            + self.field_size
    }
}

fn calculate_headermap_size(map: &HeaderMap) -> usize {
    map.iter()
        .map(|(name, value)| decoded_header_size(name.as_str().len(), value.len()))
        .sum::<usize>()
}

fn decoded_header_size(name: usize, value: usize) -> usize {
    name + value + 32
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::frame;
    use crate::hpack::{huffman, Encoder};

    #[test]
    fn test_nameless_header_at_resume() {
        let mut encoder = Encoder::default();
        let mut dst = BytesMut::new();

        let headers = Headers::new(
            StreamId::ZERO,
            Default::default(),
            HeaderMap::from_iter(vec![
                (
                    HeaderName::from_static("hello"),
                    HeaderValue::from_static("world"),
                ),
                (
                    HeaderName::from_static("hello"),
                    HeaderValue::from_static("zomg"),
                ),
                (
                    HeaderName::from_static("hello"),
                    HeaderValue::from_static("sup"),
                ),
            ]),
        );

        let continuation = headers
            .encode(&mut encoder, &mut (&mut dst).limit(frame::HEADER_LEN + 8))
            .unwrap();

        assert_eq!(17, dst.len());
        assert_eq!([0, 0, 8, 1, 0, 0, 0, 0, 0], &dst[0..9]);
        assert_eq!(&[0x40, 0x80 | 4], &dst[9..11]);
        assert_eq!("hello", huff_decode(&dst[11..15]));
        assert_eq!(0x80 | 4, dst[15]);

        let mut world = dst[16..17].to_owned();

        dst.clear();

        assert!(continuation
            .encode(&mut (&mut dst).limit(frame::HEADER_LEN + 16))
            .is_none());

        world.extend_from_slice(&dst[9..12]);
        assert_eq!("world", huff_decode(&world));

        assert_eq!(24, dst.len());
        assert_eq!([0, 0, 15, 9, 4, 0, 0, 0, 0], &dst[0..9]);

        // // Next is not indexed
        assert_eq!(&[15, 47, 0x80 | 3], &dst[12..15]);
        assert_eq!("zomg", huff_decode(&dst[15..18]));
        assert_eq!(&[15, 47, 0x80 | 3], &dst[18..21]);
        assert_eq!("sup", huff_decode(&dst[21..]));
    }

    /// switchyard: a block sent again on an unchanged table is copied from its remembered
    /// encoding, and the copy matches what encoding it field by field gives; any change to the
    /// table, the fields, their order or a value's sensitivity encodes it afresh. A server's
    /// headers and trailers, taking turns, are both copied.
    #[test]
    fn switchyard_repeated_block_is_copied_when_the_table_has_not_changed() {
        fn block_with(
            pseudo: Pseudo,
            fields: &[(&'static str, &'static str, bool)],
        ) -> HeaderBlock {
            let mut map = HeaderMap::new();
            for &(name, value, sensitive) in fields {
                let mut value = HeaderValue::from_static(value);
                value.set_sensitive(sensitive);
                map.append(HeaderName::from_static(name), value);
            }
            HeaderBlock {
                fields: map,
                field_size: 0,
                is_over_size: false,
                pseudo,
            }
        }
        fn block(fields: &[(&'static str, &'static str, bool)]) -> HeaderBlock {
            let pseudo = Pseudo::request(
                Method::POST,
                Uri::from_static("http://127.0.0.1:50051/forwarding.v1.ForwardingService/Send"),
                None,
            );
            block_with(pseudo, fields)
        }
        // Encodes with the remembered block (`cached`) and field by field (`plain`, which
        // never remembers); both must give the same bytes.
        fn both(cached: &mut Encoder, plain: &mut Encoder, block: HeaderBlock) -> (Vec<u8>, bool) {
            let mut expected = BytesMut::new();
            let headers = Iter {
                pseudo: Some(block.pseudo.clone()),
                fields: block.fields.clone().into_iter(),
            };
            plain.encode(headers, &mut expected);
            let mut probe = BytesMut::new();
            let hit = cached.encode_repeated(&block.pseudo, &block.fields, None, &mut probe);
            let got = block.into_encoding(cached).hpack;
            assert_eq!(got, expected);
            (got.to_vec(), hit)
        }
        let grpc = [
            ("content-type", "application/grpc", false),
            ("te", "trailers", false),
            ("grpc-timeout", "30000m", false),
        ];
        let (mut cached, mut plain) = (Encoder::default(), Encoder::default());

        // First: inserts every field. Second: all indexed, remembered on the third.
        let (first, hit) = both(&mut cached, &mut plain, block(&grpc));
        assert!(!hit);
        let (second, hit) = both(&mut cached, &mut plain, block(&grpc));
        assert!(!hit && second.len() < first.len());
        assert!(!both(&mut cached, &mut plain, block(&grpc)).1);
        assert_eq!(
            both(&mut cached, &mut plain, block(&grpc)),
            (second.clone(), true)
        );

        // Another value inserts into the table: the remembered encoding is stale.
        let other = [grpc[0], grpc[1], ("grpc-timeout", "5000m", false)];
        assert!(!both(&mut cached, &mut plain, block(&other)).1);
        let (again, hit) = both(&mut cached, &mut plain, block(&grpc));
        assert!(!hit && again != second, "the dynamic indices moved");

        // Remembered again, then refused for a reordered map and for a sensitive value.
        assert!(!both(&mut cached, &mut plain, block(&grpc)).1);
        assert!(both(&mut cached, &mut plain, block(&grpc)).1);
        let reordered = [grpc[1], grpc[0], grpc[2]];
        assert!(!both(&mut cached, &mut plain, block(&reordered)).1);
        assert!(both(&mut cached, &mut plain, block(&reordered)).1);
        let sensitive = [grpc[0], grpc[1], ("grpc-timeout", "30000m", true)];
        assert!(!both(&mut cached, &mut plain, block(&sensitive)).1);

        // A table size update is written before the block, so it cannot be a copy.
        assert!(!both(&mut cached, &mut plain, block(&grpc)).1);
        assert!(both(&mut cached, &mut plain, block(&grpc)).1);
        cached.update_max_size(2048);
        plain.update_max_size(2048);
        assert!(!both(&mut cached, &mut plain, block(&grpc)).1);

        // A server's answers: the same headers and the same trailers take turns, and each is
        // copied once remembered (one slot would hold only the last and never match).
        let headers = || {
            let fields = [("content-type", "application/grpc", false)];
            block_with(Pseudo::response(http::StatusCode::OK), &fields)
        };
        let trailers = || block_with(Pseudo::default(), &[("grpc-status", "0", false)]);
        let (mut cached, mut plain) = (Encoder::default(), Encoder::default());
        let mut hits = Vec::new();
        for _ in 0..4 {
            hits.push(both(&mut cached, &mut plain, headers()).1);
            hits.push(both(&mut cached, &mut plain, trailers()).1);
        }
        // The first pair inserts; the second is indexed and its trailers remembered (the
        // headers followed an insert); the third's headers are remembered and its trailers
        // copied; from the fourth on both are copied.
        assert_eq!(hits, [false, false, false, false, false, true, true, true]);
    }

    /// switchyard patch: a shared block (a client's `RequestHead`) encodes to what the same
    /// block owned encodes to, every time: afresh while the table changes, then copied, found
    /// by identity once it has matched; a change to the table makes the identity stale with the
    /// bytes, and an equal block shared separately is still found by its fields.
    #[test]
    fn switchyard_a_shared_block_is_copied_by_identity_while_the_table_stands() {
        fn block(timeout: &'static str) -> HeaderBlock {
            let mut fields = HeaderMap::new();
            fields.append("content-type", HeaderValue::from_static("application/grpc"));
            fields.append("grpc-timeout", HeaderValue::from_static(timeout));
            let uri = "http://127.0.0.1:50051/forwarding.v1.ForwardingService/Send";
            HeaderBlock {
                fields,
                field_size: 0,
                is_over_size: false,
                pseudo: Pseudo::request(Method::POST, Uri::from_static(uri), None),
            }
        }
        fn expected(plain: &mut Encoder, block: &HeaderBlock) -> BytesMut {
            let mut expected = BytesMut::new();
            let headers = Iter {
                pseudo: Some(block.pseudo.clone()),
                fields: block.fields.clone().into_iter(),
            };
            plain.encode(headers, &mut expected);
            expected
        }
        fn shared(cached: &mut Encoder, plain: &mut Encoder, block: &SharedBlock) {
            let expected = expected(plain, &block.0);
            let got = HeaderBlock::shared_into_encoding(block.clone(), cached).hpack;
            assert_eq!(got, expected);
        }
        let (mut cached, mut plain) = (Encoder::default(), Encoder::default());
        let head = SharedBlock(Arc::new(block("30000m")));
        for _ in 0..4 {
            shared(&mut cached, &mut plain, &head);
        }
        assert!(cached.knows(&head), "matched by its fields, then known");
        shared(&mut cached, &mut plain, &head);

        // Another value inserts into the table: the block is encoded afresh, then known again.
        let other = block("5000m");
        let expected_other = expected(&mut plain, &other);
        assert_eq!(other.into_encoding(&mut cached).hpack, expected_other);
        for _ in 0..3 {
            shared(&mut cached, &mut plain, &head);
        }
        assert!(cached.knows(&head));

        // The same fields shared separately: copied, found by comparing them.
        let twin = SharedBlock(Arc::new(block("30000m")));
        shared(&mut cached, &mut plain, &twin);
    }

    /// switchyard patch: HEADERS and PUSH_PROMISE hold their header blocks boxed, so moving a
    /// frame copies 64 bytes instead of ~300 (296 with the blocks inline).
    #[test]
    fn switchyard_frames_with_header_blocks_stay_small() {
        assert!(std::mem::size_of::<frame::Frame>() <= 64);
    }

    /// switchyard patch: a block received again on an unchanged table shares its last decoding
    /// (and a received frame hands its fields out in place), and matches what decoding it field
    /// by field gives; a changed table, or a list limit the block does not fit, decodes it
    /// afresh.
    #[test]
    fn switchyard_pseudo_is_empty_only_without_any_field() {
        assert!(Pseudo::default().is_empty());
        let status = Pseudo {
            status: Some(http::StatusCode::OK),
            ..Pseudo::default()
        };
        assert!(!status.is_empty());
        let path = Pseudo {
            path: Some(BytesStr::from_static("/")),
            ..Pseudo::default()
        };
        assert!(!path.is_empty());
    }

    #[test]
    fn switchyard_repeated_block_is_taken_from_its_last_decoding() {
        use crate::hpack::Decoder;

        fn answer(fields: &[(&'static str, &'static str)], status: bool) -> HeaderBlock {
            let mut map = HeaderMap::new();
            for &(name, value) in fields {
                map.append(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
            HeaderBlock {
                fields: map,
                field_size: 0,
                is_over_size: false,
                pseudo: if status {
                    Pseudo::response(StatusCode::OK)
                } else {
                    Pseudo::default()
                },
            }
        }
        // Loads `bytes` as a received frame's block; returns the frame and whether its bytes
        // were remembered. A frame taken from the decoder's memory shares the remembered block,
        // and hands out its fields in place.
        fn load(decoder: &mut Decoder, bytes: &[u8], max: usize) -> (Headers, bool) {
            let hit = decoder.repeated(bytes).map(|b| b.block.clone());
            // As the codec receives it: a frame with no block yet, then its block decoded.
            let head = Head::new(Kind::Headers, 0x4, StreamId::from(1));
            let (mut frame, mut src) = Headers::load(head, BytesMut::from(bytes)).unwrap();
            assert!(frame.is_end_headers());
            frame.load_hpack(&mut src, max, decoder).unwrap();
            assert!(src.is_empty());
            if let Some(remembered) = &hit {
                let shared = std::ptr::eq(frame.fields(), &remembered.0.fields);
                assert_eq!(
                    shared,
                    !frame.is_over_size(),
                    "shared unless decoded afresh"
                );
            }
            (frame, hit.is_some())
        }
        // Decodes `bytes` field by field.
        fn reference(decoder: &mut Decoder, bytes: &[u8]) -> (Option<StatusCode>, HeaderMap) {
            let mut src = BytesMut::from(bytes);
            let (mut status, mut fields) = (None, HeaderMap::new());
            decoder
                .decode(&mut Cursor::new(&mut src), |header| {
                    match header {
                        hpack::Header::Status(s) => status = Some(s),
                        hpack::Header::Field { name, value } => {
                            fields.append(name, value);
                        }
                        _ => {}
                    }
                    ControlFlow::Continue(())
                })
                .unwrap();
            (status, fields)
        }
        let mut encoder = Encoder::default();
        let (mut cached, mut plain) = (Decoder::new(4096), Decoder::new(4096));
        // Loads `bytes` into both; returns whether `cached` had them remembered, and whether
        // the block was over the limit.
        fn both(
            cached: &mut Decoder,
            plain: &mut Decoder,
            bytes: &[u8],
            max: usize,
        ) -> (bool, bool) {
            let (frame, hit) = load(cached, bytes, max);
            let (status, fields) = reference(plain, bytes);
            assert_eq!(frame.pseudo().status, status);
            assert_eq!(*frame.fields(), fields);
            let over_size = frame.is_over_size();
            // Taken apart as a received frame: the fields are handed out in place.
            let at = frame.fields() as *const HeaderMap;
            let (pseudo, received) = frame.into_received();
            assert_eq!((pseudo.status, &*received), (status, &fields));
            assert!(std::ptr::eq(&*received, at), "handed out without a copy");
            (hit, over_size)
        }
        let headers = [("content-type", "application/grpc")];
        let trailers = [("grpc-status", "0")];

        // The first answer inserts its fields; the second is all indexed and is remembered;
        // from the third on both blocks are taken from there.
        for round in 0..4 {
            let h = answer(&headers, true).into_encoding(&mut encoder).hpack;
            let t = answer(&trailers, false).into_encoding(&mut encoder).hpack;
            assert_eq!(
                both(&mut cached, &mut plain, &h, 1024),
                (round >= 2, false),
                "round {round}"
            );
            assert_eq!(
                both(&mut cached, &mut plain, &t, 1024),
                (round >= 2, false),
                "round {round}"
            );
        }
        let indexed = answer(&headers, true).into_encoding(&mut encoder).hpack;
        assert!(cached.repeated(&indexed).is_some());

        // A list limit the block does not fit: though remembered, it is decoded afresh and
        // found over size (an over-size block keeps none of its fields, so it is not compared
        // with the reference; a remembered one taken as it is would not be over size).
        let (frame, remembered) = load(&mut cached, &indexed, 40);
        reference(&mut plain, &indexed);
        assert!(remembered && frame.is_over_size());

        // Another trailer inserts into the table: the same bytes now name other entries.
        let other = [("grpc-status", "0"), ("grpc-message", "busy")];
        let t = answer(&other, false).into_encoding(&mut encoder).hpack;
        assert_eq!(both(&mut cached, &mut plain, &t, 1024), (false, false));
        assert!(cached.repeated(&indexed).is_none());
        assert_eq!(
            both(&mut cached, &mut plain, &indexed, 1024),
            (false, false)
        );
    }

    fn huff_decode(src: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        huffman::decode(src, &mut buf).unwrap()
    }

    #[test]
    fn test_connect_request_pseudo_headers_omits_path_and_scheme() {
        // CONNECT requests MUST NOT include :scheme & :path pseudo-header fields
        // See: https://datatracker.ietf.org/doc/html/rfc9113#section-8.5

        assert_eq!(
            Pseudo::request(
                Method::CONNECT,
                Uri::from_static("https://example.com:8443"),
                None
            ),
            Pseudo {
                method: Method::CONNECT.into(),
                authority: BytesStr::from_static("example.com:8443").into(),
                ..Default::default()
            }
        );

        assert_eq!(
            Pseudo::request(
                Method::CONNECT,
                Uri::from_static("https://example.com/test"),
                None
            ),
            Pseudo {
                method: Method::CONNECT.into(),
                authority: BytesStr::from_static("example.com").into(),
                ..Default::default()
            }
        );

        assert_eq!(
            Pseudo::request(Method::CONNECT, Uri::from_static("example.com:8443"), None),
            Pseudo {
                method: Method::CONNECT.into(),
                authority: BytesStr::from_static("example.com:8443").into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn test_extended_connect_request_pseudo_headers_includes_path_and_scheme() {
        // On requests that contain the :protocol pseudo-header field, the
        // :scheme and :path pseudo-header fields of the target URI (see
        // Section 5) MUST also be included.
        // See: https://datatracker.ietf.org/doc/html/rfc8441#section-4

        assert_eq!(
            Pseudo::request(
                Method::CONNECT,
                Uri::from_static("https://example.com:8443"),
                Protocol::from_static("the-bread-protocol").into()
            ),
            Pseudo {
                method: Method::CONNECT.into(),
                authority: BytesStr::from_static("example.com:8443").into(),
                scheme: BytesStr::from_static("https").into(),
                path: BytesStr::from_static("/").into(),
                protocol: Protocol::from_static("the-bread-protocol").into(),
                ..Default::default()
            }
        );

        assert_eq!(
            Pseudo::request(
                Method::CONNECT,
                Uri::from_static("https://example.com:8443/test"),
                Protocol::from_static("the-bread-protocol").into()
            ),
            Pseudo {
                method: Method::CONNECT.into(),
                authority: BytesStr::from_static("example.com:8443").into(),
                scheme: BytesStr::from_static("https").into(),
                path: BytesStr::from_static("/test").into(),
                protocol: Protocol::from_static("the-bread-protocol").into(),
                ..Default::default()
            }
        );

        assert_eq!(
            Pseudo::request(
                Method::CONNECT,
                Uri::from_static("http://example.com/a/b/c"),
                Protocol::from_static("the-bread-protocol").into()
            ),
            Pseudo {
                method: Method::CONNECT.into(),
                authority: BytesStr::from_static("example.com").into(),
                scheme: BytesStr::from_static("http").into(),
                path: BytesStr::from_static("/a/b/c").into(),
                protocol: Protocol::from_static("the-bread-protocol").into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn test_options_request_with_empty_path_has_asterisk_as_pseudo_path() {
        // an OPTIONS request for an "http" or "https" URI that does not include a path component;
        // these MUST include a ":path" pseudo-header field with a value of '*' (see Section 7.1 of [HTTP]).
        // See: https://datatracker.ietf.org/doc/html/rfc9113#section-8.3.1
        assert_eq!(
            Pseudo::request(Method::OPTIONS, Uri::from_static("example.com:8080"), None,),
            Pseudo {
                method: Method::OPTIONS.into(),
                authority: BytesStr::from_static("example.com:8080").into(),
                path: BytesStr::from_static("*").into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn test_try_append_prevents_panic_on_max_size_reached() {
        // Verify that decoding >24,577 unique headers sets `is_over_size`
        // instead of panicking via HeaderMap::append().
        //
        // HeaderMap::MAX_SIZE = 32,768. With 75% load factor, max entries = 24,576.
        // try_append returns Err(MaxSizeReached) at entry 24,577.
        // Before the fix (using append), this panicked.
        //
        // We manually construct HPACK bytes for 25,000 unique headers because
        // creating a HeaderMap with that many entries also panics on construction.

        // Build HPACK-encoded block:
        // Pseudo-headers (indexed refs to static table):
        //   :method GET         → 0x82 (static index 2)
        //   :scheme http        → 0x86 (static index 6)
        //   :path /             → 0x84 (static index 4)
        //   :authority "localhost" → literal with indexing (name index 0)
        //
        // Then 25,000 unique headers: "literal without indexing, new name"
        //   0x00 → literal without indexing, name index 0
        //   <name_len> <name_bytes>
        //   <value_len> <value_bytes>

        let num_headers = 25_000;

        // Build the HPACK block
        let mut hpack = Vec::new();

        // Pseudo-headers
        hpack.push(0x82u8); // :method GET (static index 2)
        hpack.push(0x86); // :scheme http (static index 6)
        hpack.push(0x84); // :path / (static index 4)

        // :authority "localhost" — literal with incremental indexing
        hpack.push(0x41); // literal with indexing, name index 1 (= ":authority")
        hpack.push(0x09); // value length 9
        hpack.extend_from_slice(b"localhost");

        // 25,000 unique headers: "literal without indexing, new name"
        // Format: 0x00 + name_len + name + value_len + value
        for i in 0..num_headers {
            let name = format!("x-h-{i}");
            hpack.push(0x00u8); // literal without indexing, name index 0
            hpack.push(name.len() as u8);
            hpack.extend_from_slice(name.as_bytes());
            hpack.push(1u8); // value length 1
            hpack.push(b'v');
        }

        // Build the HTTP/2 HEADERS frame: 9-byte header + HPACK payload
        let payload_len = hpack.len();
        let mut frame = BytesMut::with_capacity(9 + payload_len);

        // Frame header: 3 bytes length, 1 byte type (0x01=HEADERS), 1 byte flags, 4 bytes stream_id
        frame.put_u8(((payload_len >> 16) & 0xFF) as u8);
        frame.put_u8(((payload_len >> 8) & 0xFF) as u8);
        frame.put_u8((payload_len & 0xFF) as u8);
        frame.put_u8(0x01); // type: HEADERS
        frame.put_u8(0x04); // flags: END_HEADERS
        frame.put_u32(1); // stream_id: 1

        frame.extend_from_slice(&hpack);

        // Parse the HEADERS frame
        let head = Head::parse(&frame[..9]);
        let payload = BytesMut::from(&frame[9..]);
        let (mut headers, mut hpack_data) = Headers::load(head, payload).unwrap();
        // hpack_data contains the HPACK payload (no padding/priority in our frame)

        // Decode the HPACK block — this should NOT panic
        let mut decoder = hpack::Decoder::new(4096);
        const DEFAULT_MAX_HEADER_LIST_SIZE: usize = 16 << 20; // 16 MB
        headers
            .load_hpack(&mut hpack_data, DEFAULT_MAX_HEADER_LIST_SIZE, &mut decoder)
            .expect("load_hpack should return Ok");

        // Verify that is_over_size was set (try_append returned Err)
        assert!(
            headers.is_over_size(),
            "is_over_size should be true when HeaderMap capacity is exceeded"
        );
    }

    #[test]
    fn test_non_option_and_non_connect_requests_include_path_and_scheme() {
        let methods = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::HEAD,
            Method::PATCH,
            Method::TRACE,
        ];

        for method in methods {
            assert_eq!(
                Pseudo::request(
                    method.clone(),
                    Uri::from_static("http://example.com:8080"),
                    None,
                ),
                Pseudo {
                    method: method.clone().into(),
                    authority: BytesStr::from_static("example.com:8080").into(),
                    scheme: BytesStr::from_static("http").into(),
                    path: BytesStr::from_static("/").into(),
                    ..Default::default()
                }
            );
            assert_eq!(
                Pseudo::request(
                    method.clone(),
                    Uri::from_static("https://example.com/a/b/c"),
                    None,
                ),
                Pseudo {
                    method: method.into(),
                    authority: BytesStr::from_static("example.com").into(),
                    scheme: BytesStr::from_static("https").into(),
                    path: BytesStr::from_static("/a/b/c").into(),
                    ..Default::default()
                }
            );
        }
    }
}
