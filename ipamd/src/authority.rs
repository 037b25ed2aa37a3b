//! Every gRPC client on the socket, whatever `:authority` it sends.
//!
//! gRPC C-core (Python's `grpcio`, C++, Ruby) sends a Unix socket's path as the HTTP/2
//! `:authority` (`tmp%2Fipamd.sock` for `unix:/tmp/ipamd.sock`); Go's gRPC and tonic send
//! `localhost`. The `h2` crate under tonic resets any stream whose authority is not a valid URI
//! authority (RST_STREAM PROTOCOL_ERROR; hyperium/h2 PR 487 has been open since 2020), so those
//! clients cannot call the daemon. [`Normalize`] sits between the socket and `h2`, on the
//! client-to-server bytes only:
//!
//! * it reads the connection preface and frames up to the first complete header block and
//!   decodes it (HPACK, `loona-hpack`);
//! * if that block's `:authority` is valid, it forwards everything unchanged and gets out of the
//!   way for the rest of the connection (no parsing, no copy: the Go plugin, tonic clients and
//!   `eniplan-cni` pay nothing after their first request);
//! * otherwise, for the rest of the connection, it decodes every header block and re-encodes it
//!   with `:authority: localhost` as literals without indexing (so `h2`'s decoder table stays
//!   empty and consistent), split into CONTINUATION frames where it outgrows a frame.
//!
//! Written by hand because no crate rewrites HTTP/2 headers in flight; the framing is RFC 9113
//! §4 and §6, the header encoding RFC 7541 §6.2.2.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
/// The largest frame `h2` accepts by default (SETTINGS_MAX_FRAME_SIZE's initial value); a
/// longer one is passed on for `h2` to refuse.
const MAX_FRAME: usize = 16_384;
/// The most header-block bytes held while waiting for CONTINUATION frames.
const MAX_BLOCK: usize = 256 * 1024;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The most a header block may decode to, counted as RFC 7541 §4.1 counts a table entry (name +
/// value + 32 per field): four times hyper's own header-list limit (16 KiB), so no request the
/// server would take is refused here, while HPACK's back-references (one byte naming a 4 KiB
/// table entry) cannot make a 256 KiB block decode to a gigabyte.
pub const MAX_DECODED: usize = 64 * 1024;
/// What replaces an authority `h2` would refuse.
const LOCALHOST: &[u8] = b"localhost";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Until the first header block: is its authority valid?
    Probe,
    /// Forward bytes as they come.
    Passthrough,
    /// Re-encode every header block.
    Rewrite,
}

/// A header block being gathered: its HEADERS frame's stream, flags and priority fields, the
/// fragments so far, and (while probing) the raw frames to forward if nothing needs changing.
struct Block {
    stream: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    raw: Vec<u8>,
}

/// The client-to-server byte transformer, without I/O (see the module docs).
pub struct Rewriter {
    mode: Mode,
    preface_seen: usize,
    input: Vec<u8>,
    block: Option<Block>,
    decoder: loona_hpack::Decoder<'static>,
    /// Whether any authority was rewritten (for tests and logs).
    pub rewrote: bool,
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter {
            mode: Mode::Probe,
            preface_seen: 0,
            input: Vec::new(),
            block: None,
            decoder: loona_hpack::Decoder::new(),
            rewrote: false,
        }
    }
}

impl Rewriter {
    /// Whether the rest of the connection is forwarded untouched.
    pub fn passthrough(&self) -> bool {
        self.mode == Mode::Passthrough && self.input.is_empty()
    }

    /// Consumes `bytes` from the client and appends what `h2` should read to `out`.
    ///
    /// # Errors
    /// A header block that cannot be decoded once rewriting has begun (the connection cannot be
    /// kept consistent), one larger than 256 KiB, or one that decodes to more than
    /// [`MAX_DECODED`] bytes.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if self.mode == Mode::Passthrough {
            out.extend_from_slice(&self.input);
            self.input.clear();
            out.extend_from_slice(bytes);
            return Ok(());
        }
        self.input.extend_from_slice(bytes);
        let mut at = 0;
        if self.preface_seen < PREFACE.len() {
            let n = (PREFACE.len() - self.preface_seen).min(self.input.len());
            if self.input[..n] != PREFACE[self.preface_seen..self.preface_seen + n] {
                // Not HTTP/2 with prior knowledge: let h2 say so.
                self.pass_rest(0, out);
                return Ok(());
            }
            self.preface_seen += n;
            out.extend_from_slice(&self.input[..n]);
            at = n;
        }
        while self.mode != Mode::Passthrough && self.input.len() - at >= FRAME_HEADER {
            let h = &self.input[at..at + FRAME_HEADER];
            let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            let (kind, flags) = (h[3], h[4]);
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            if len > MAX_FRAME {
                self.pass_rest(at, out);
                return Ok(());
            }
            if self.input.len() - at < FRAME_HEADER + len {
                break;
            }
            let frame = at..at + FRAME_HEADER + len;
            at = frame.end;
            match kind {
                HEADERS if self.block.is_none() => {
                    let raw = self.input[frame.clone()].to_vec();
                    let Some((priority, fragment)) = split_headers(flags, &raw[FRAME_HEADER..])
                    else {
                        self.block = None;
                        self.pass_raw(&raw, at, out);
                        return Ok(());
                    };
                    self.block = Some(Block {
                        stream,
                        flags,
                        priority,
                        fragment: fragment.to_vec(),
                        raw: if self.mode == Mode::Probe {
                            raw
                        } else {
                            Vec::new()
                        },
                    });
                }
                CONTINUATION if self.block.as_ref().is_some_and(|b| b.stream == stream) => {
                    let block = self.block.as_mut().expect("checked");
                    block
                        .fragment
                        .extend_from_slice(&self.input[frame.start + FRAME_HEADER..frame.end]);
                    if self.mode == Mode::Probe {
                        block.raw.extend_from_slice(&self.input[frame.clone()]);
                    }
                    if block.fragment.len() > MAX_BLOCK {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "an HTTP/2 header block over 256 KiB",
                        ));
                    }
                }
                _ if self.block.is_some() => {
                    // Anything else inside a header block is a protocol error. While probing,
                    // h2 gets the bytes as they were and says so; once rewriting, h2's view can
                    // no longer be kept consistent: close the connection.
                    if self.mode == Mode::Rewrite {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "an HTTP/2 frame inside a header block",
                        ));
                    }
                    let raw = self.block.take().map(|b| b.raw).unwrap_or_default();
                    let mut rest = raw;
                    rest.extend_from_slice(&self.input[frame]);
                    self.pass_raw(&rest, at, out);
                    return Ok(());
                }
                _ => out.extend_from_slice(&self.input[frame]),
            }
            let complete = matches!(kind, HEADERS | CONTINUATION) && flags & END_HEADERS != 0;
            if complete && let Some(block) = self.block.take() {
                self.finish(&block, out)?;
            }
        }
        if self.mode == Mode::Passthrough {
            self.pass_rest(at, out);
            return Ok(());
        }
        self.input.drain(..at);
        Ok(())
    }

    /// A complete header block: forward it as it was, or re-encoded.
    fn finish(&mut self, block: &Block, out: &mut Vec<u8>) -> io::Result<()> {
        let mut fields = Vec::new();
        let mut size = 0usize;
        let decoded = self.decoder.decode_with_cb(&block.fragment, |name, value| {
            size = size.saturating_add(name.len() + value.len() + 32);
            if size <= MAX_DECODED {
                fields.push((name.into_owned(), value.into_owned()));
            }
        });
        if size > MAX_DECODED {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("an HTTP/2 header block decoding to over {MAX_DECODED} bytes"),
            ));
        }
        let fields = match decoded {
            Ok(()) => fields,
            Err(e) if self.mode == Mode::Probe => {
                tracing::debug!(error = ?e, "undecodable first header block; passed to h2");
                self.mode = Mode::Passthrough;
                out.extend_from_slice(&block.raw);
                return Ok(());
            }
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("undecodable HTTP/2 header block: {e:?}"),
                ));
            }
        };
        let bad = fields
            .iter()
            .any(|(name, value)| name == b":authority" && !valid_authority(value));
        if self.mode == Mode::Probe && !bad {
            self.mode = Mode::Passthrough;
            out.extend_from_slice(&block.raw);
            return Ok(());
        }
        if bad {
            self.rewrote = true;
        }
        self.mode = Mode::Rewrite;
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        for (name, value) in &fields {
            let value: &[u8] = if name == b":authority" && !valid_authority(value) {
                LOCALHOST
            } else {
                value
            };
            literal(&mut encoded, name, value);
        }
        write_block(out, block.stream, block.flags, block.priority, &encoded);
        Ok(())
    }

    fn pass_raw(&mut self, raw: &[u8], at: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(raw);
        self.pass_rest(at, out);
    }

    /// Forwards everything from `at` on, and all that follows.
    fn pass_rest(&mut self, at: usize, out: &mut Vec<u8>) {
        self.mode = Mode::Passthrough;
        out.extend_from_slice(&self.input[at..]);
        self.input.clear();
    }
}

/// A HEADERS payload without its padding: the priority fields (when flagged) and the fragment.
fn split_headers(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    let priority = if flags & PRIORITY != 0 {
        let fields: [u8; 5] = p.get(..5)?.try_into().ok()?;
        p = &p[5..];
        Some(fields)
    } else {
        None
    };
    let end = p.len().checked_sub(pad)?;
    Some((priority, &p[..end]))
}

/// Whether `h2` accepts this `:authority` (a valid URI authority).
fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// RFC 7541 §6.2.2: a literal header field without indexing, new name, no Huffman coding.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    string(out, name);
    string(out, value);
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, s.len(), 7, 0x00);
    out.extend_from_slice(s);
}

/// RFC 7541 §5.1: an integer with an `n`-bit prefix; `flags` fills the octet's upper bits.
fn integer(out: &mut Vec<u8>, mut v: usize, n: u32, flags: u8) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | u8::try_from(v).expect("below the prefix"));
        return;
    }
    out.push(flags | u8::try_from(max).expect("a prefix fits an octet"));
    v -= max;
    while v >= 128 {
        out.push(u8::try_from(v % 128).expect("below 128") | 0x80);
        v /= 128;
    }
    out.push(u8::try_from(v).expect("below 128"));
}

/// A header block as HEADERS (+ CONTINUATION) frames of at most [`MAX_FRAME`] bytes.
fn write_block(out: &mut Vec<u8>, stream: u32, flags: u8, priority: Option<[u8; 5]>, block: &[u8]) {
    let room = MAX_FRAME - priority.map_or(0, |_| 5);
    let (first, mut rest) = block.split_at(block.len().min(room));
    let mut head_flags = flags & (END_STREAM | PRIORITY);
    if rest.is_empty() {
        head_flags |= END_HEADERS;
    }
    let mut payload = Vec::with_capacity(first.len() + 5);
    if let Some(p) = priority {
        payload.extend_from_slice(&p);
    }
    payload.extend_from_slice(first);
    frame(out, HEADERS, head_flags, stream, &payload);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = tail;
        let f = if rest.is_empty() { END_HEADERS } else { 0 };
        frame(out, CONTINUATION, f, stream, chunk);
    }
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("a frame is at most 16 KiB");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A connection whose client-to-server bytes go through a [`Rewriter`].
pub struct Normalize<S> {
    inner: S,
    rewriter: Rewriter,
    out: Vec<u8>,
    out_at: usize,
}

impl<S> Normalize<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        Normalize {
            inner,
            rewriter: Rewriter::default(),
            out: Vec::new(),
            out_at: 0,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Normalize<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_at < this.out.len() {
                let n = (this.out.len() - this.out_at).min(buf.remaining());
                buf.put_slice(&this.out[this.out_at..this.out_at + n]);
                this.out_at += n;
                if this.out_at == this.out.len() {
                    this.out.clear();
                    this.out_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.rewriter.passthrough() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut scratch = [0u8; 8192];
            let mut read = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream: hand over whatever partial frame is left, then EOF.
                this.rewriter.mode = Mode::Passthrough;
                let rest = std::mem::take(&mut this.rewriter.input);
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.out = rest;
                continue;
            }
            this.rewriter.feed(read.filled(), &mut this.out)?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Normalize<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Normalize<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests;
