//! Lines read from a remote peer's output (an ssh session's stderr) that never
//! stop being read: a line longer than [`MAX_LINE`] is cut (the rest skipped),
//! bytes that are not UTF-8 are replaced, and only the end of the stream (or a
//! read error) ends it. A reader that stopped would let the pipe fill, and the
//! remote workers writing to it would block.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest line kept, in bytes; the rest of a longer line is dropped.
pub(super) const MAX_LINE: usize = 8 * 1024;

/// The next line of `reader` without its newline, or `None` at the end of the
/// stream. Not cancellation safe: a line being read when the future is dropped is
/// lost (the stream itself goes on).
pub(super) async fn next_bounded_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Option<String> {
    let mut line = Vec::new();
    let mut seen_any = false;
    loop {
        let buffer = match reader.fill_buf().await {
            Ok(buffer) => buffer,
            Err(_) => return None,
        };
        if buffer.is_empty() {
            return seen_any.then(|| String::from_utf8_lossy(&line).into_owned());
        }
        seen_any = true;
        let (chunk, used, ended) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (&buffer[..end], end + 1, true),
            None => (buffer, buffer.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if ended {
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_that_are_not_utf8_and_endless_lines_do_not_end_the_stream() {
        let mut input: Vec<u8> = b"first\n\xff\xfe binary\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE * 3));
        input.extend_from_slice(b"\nafter\nno newline at the end");
        let mut reader = tokio::io::BufReader::with_capacity(64, &input[..]);
        assert_eq!(next_bounded_line(&mut reader).await.unwrap(), "first");
        assert_eq!(
            next_bounded_line(&mut reader).await.unwrap(),
            "\u{fffd}\u{fffd} binary"
        );
        assert_eq!(
            next_bounded_line(&mut reader).await.unwrap(),
            "x".repeat(MAX_LINE)
        );
        assert_eq!(next_bounded_line(&mut reader).await.unwrap(), "after");
        assert_eq!(
            next_bounded_line(&mut reader).await.unwrap(),
            "no newline at the end"
        );
        assert_eq!(next_bounded_line(&mut reader).await, None);
    }
}
