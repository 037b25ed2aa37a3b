use super::*;

/// A HEADERS frame's bytes.
fn headers_frame(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame(&mut out, HEADERS, flags, stream, payload);
    out
}

/// A request header block as C-core writes one: `:authority` as a literal with incremental
/// indexing (name from the static table, index 1), the rest as literals; with `reuse`, the
/// authority is instead the first dynamic-table entry (index 62), as in later requests.
fn request_block(authority: &[u8], reuse: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.push(0x83); // :method POST (static 3)
    b.push(0x86); // :scheme http (static 6)
    literal(&mut b, b":path", b"/rpc.CNIBackend/AddNetwork");
    if reuse {
        b.push(0x80 | 0x3e); // indexed, 62: the first dynamic entry
    } else {
        integer(&mut b, 1, 6, 0x40);
        string(&mut b, authority);
    }
    literal(&mut b, b"content-type", b"application/grpc");
    literal(&mut b, b"te", b"trailers");
    b
}

fn preface_and_settings() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    frame(&mut out, 0x4, 0, 0, &[]);
    out
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Decodes what `h2` would read: every frame, every header block with one decoder.
fn h2_view(bytes: &[u8]) -> Vec<(u8, u32, Fields)> {
    assert!(bytes.starts_with(PREFACE), "the preface comes first");
    let mut at = PREFACE.len();
    let mut decoder = loona_hpack::Decoder::new();
    let mut frames = Vec::new();
    let mut block: Vec<u8> = Vec::new();
    while at < bytes.len() {
        let h = &bytes[at..at + FRAME_HEADER];
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        assert!(len <= MAX_FRAME, "no frame over the default maximum");
        let payload = &bytes[at + FRAME_HEADER..at + FRAME_HEADER + len];
        at += FRAME_HEADER + len;
        match h[3] {
            HEADERS | CONTINUATION => {
                let (_, fragment) = if h[3] == HEADERS {
                    split_headers(h[4], payload).expect("a valid HEADERS payload")
                } else {
                    (None, payload)
                };
                block.extend_from_slice(fragment);
                if h[4] & END_HEADERS != 0 {
                    let fields = decoder.decode(&block).expect("h2 decodes it");
                    frames.push((HEADERS, stream, fields));
                    block.clear();
                }
            }
            kind => frames.push((kind, stream, Vec::new())),
        }
    }
    frames
}

fn authority_of(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    fields
        .iter()
        .find(|(n, _)| n == b":authority")
        .map(|(_, v)| v.clone())
        .expect("an authority")
}

fn run(input: &[u8], chunk: usize) -> (Vec<u8>, Rewriter) {
    let mut r = Rewriter::default();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        r.feed(piece, &mut out).unwrap();
    }
    (out, r)
}

#[test]
fn a_valid_authority_passes_byte_for_byte_and_then_untouched() {
    let mut input = preface_and_settings();
    input.extend(headers_frame(
        1,
        END_HEADERS,
        &request_block(b"localhost", false),
    ));
    frame(&mut input, 0x0, END_STREAM, 1, b"\0\0\0\0\0");
    input.extend(headers_frame(3, END_HEADERS, &request_block(b"", true)));
    for chunk in [1, 7, 4096] {
        let (out, r) = run(&input, chunk);
        assert_eq!(out, input, "chunks of {chunk}");
        assert!(r.passthrough() && !r.rewrote);
    }
}

#[test]
fn a_socket_path_becomes_localhost_in_every_later_request() {
    let mut input = preface_and_settings();
    input.extend(headers_frame(
        1,
        END_HEADERS,
        &request_block(b"tmp%2Fipamd.sock", false),
    ));
    frame(&mut input, 0x0, END_STREAM, 1, b"\0\0\0\0\0");
    frame(&mut input, 0x8, 0, 0, &[0, 0, 1, 0]); // WINDOW_UPDATE
    // The second request names the authority through the client's dynamic table.
    input.extend(headers_frame(
        3,
        END_HEADERS | END_STREAM,
        &request_block(b"", true),
    ));
    for chunk in [1, 5, 9, 4096] {
        let (out, r) = run(&input, chunk);
        assert!(r.rewrote);
        let view = h2_view(&out);
        let heads: Vec<_> = view.iter().filter(|(k, _, _)| *k == HEADERS).collect();
        assert_eq!(heads.len(), 2, "chunks of {chunk}");
        for (_, _, fields) in &heads {
            assert_eq!(authority_of(fields), b"localhost");
            assert!(
                fields
                    .iter()
                    .any(|(n, v)| n == b":path" && v == b"/rpc.CNIBackend/AddNetwork")
            );
        }
        let kinds: Vec<u8> = view.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(
            kinds,
            [0x4, HEADERS, 0x0, 0x8, HEADERS],
            "every other frame kept, in order"
        );
    }
}

#[test]
fn continuation_padding_and_priority_are_handled() {
    let block = request_block(b"tmp%2Fipamd.sock", false);
    let (a, b) = block.split_at(10);
    // HEADERS with PADDED and PRIORITY, the block's end in a CONTINUATION.
    let mut payload = vec![3u8];
    payload.extend_from_slice(&[0, 0, 0, 0, 15]);
    payload.extend_from_slice(a);
    payload.extend_from_slice(&[0, 0, 0]);
    let mut input = preface_and_settings();
    input.extend(headers_frame(1, PADDED | PRIORITY, &payload));
    frame(&mut input, CONTINUATION, END_HEADERS, 1, b);
    let (out, _) = run(&input, 3);
    let view = h2_view(&out);
    assert_eq!(authority_of(&view[1].2), b"localhost");
}

#[test]
fn a_block_larger_than_a_frame_is_split_into_continuations() {
    let mut block = request_block(b"tmp%2Fipamd.sock", false);
    let big = vec![b'x'; 40_000];
    literal(&mut block, b"x-big", &big);
    let mut input = preface_and_settings();
    let (first, rest) = block.split_at(MAX_FRAME);
    input.extend(headers_frame(1, 0, first));
    for (i, chunk) in rest.chunks(MAX_FRAME).enumerate() {
        let last = (i + 1) * MAX_FRAME >= rest.len();
        frame(
            &mut input,
            CONTINUATION,
            if last { END_HEADERS } else { 0 },
            1,
            chunk,
        );
    }
    let (out, _) = run(&input, 1000);
    let view = h2_view(&out);
    let fields = &view[1].2;
    assert_eq!(authority_of(fields), b"localhost");
    assert!(
        fields
            .iter()
            .any(|(n, v)| n == b"x-big" && v.len() == 40_000)
    );
}

#[test]
fn a_block_that_decodes_past_the_bound_closes_the_connection() {
    // One 4 KiB header enters the client's dynamic table, then 20 one-byte references to it:
    // 24 bytes on the wire that would decode to 80 KiB (and 256 KiB of them to a gigabyte).
    let mut block = request_block(b"tmp%2Fipamd.sock", false);
    block.push(0x40); // literal with incremental indexing, new name
    string(&mut block, b"x-big");
    string(&mut block, &[b'x'; 4000]);
    block.extend(std::iter::repeat_n(0x80 | 0x3e, 20)); // indexed, 62: that header
    let mut input = preface_and_settings();
    input.extend(headers_frame(1, END_HEADERS, &block));
    for chunk in [7, 4096, input.len()] {
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        let failed = input
            .chunks(chunk)
            .map(|piece| r.feed(piece, &mut out))
            .find_map(Result::err)
            .expect("the block is refused");
        assert_eq!(failed.kind(), io::ErrorKind::InvalidData);
        assert!(failed.to_string().contains("65536"), "{failed}");
        assert!(out.len() < input.len(), "nothing decoded was passed on");
    }
    // Under the bound, the same shape is rewritten as usual.
    let mut small = request_block(b"tmp%2Fipamd.sock", false);
    small.push(0x40);
    string(&mut small, b"x-big");
    string(&mut small, &[b'x'; 4000]);
    small.extend(std::iter::repeat_n(0x80 | 0x3e, 10));
    let mut input = preface_and_settings();
    input.extend(headers_frame(1, END_HEADERS, &small));
    let (out, _) = run(&input, 4096);
    let view = h2_view(&out);
    assert_eq!(view[1].2.iter().filter(|(n, _)| n == b"x-big").count(), 11);
}

#[test]
fn what_is_not_http2_goes_to_h2_unchanged() {
    let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01garbage".to_vec();
    let (out, r) = run(&input, 4);
    assert_eq!(out, input);
    assert!(r.passthrough());
}

#[test]
fn integers_follow_rfc_7541_appendix_c1() {
    let mut out = Vec::new();
    integer(&mut out, 10, 5, 0);
    assert_eq!(out, [0b01010]);
    out.clear();
    integer(&mut out, 1337, 5, 0);
    assert_eq!(out, [0b11111, 0b1001_1010, 0b0000_1010]);
    out.clear();
    integer(&mut out, 42, 8, 0);
    assert_eq!(out, [42]);
}
