//! hyper's HTTP/1 server answers a request it cannot parse by itself (a bad
//! request line, header or `Content-Length`, HTTP/0.9: `400`; a target over
//! 64 KiB: `414`; too many or too large headers: `431`), with an empty body
//! and no hook to change it. [`JsonErrors`] sits between hyper and the
//! socket and writes weir's JSON error in place of that answer.
//!
//! How it is recognised: hyper writes it only when no answer is under way,
//! after closing the read side, so it is the last thing written on the
//! connection and it is whole in one write (vectored writes are off, so
//! hyper hands over its buffer in one piece). It is exactly a status line
//! `HTTP/1.1 400|414|431` followed by no header but `connection: close`,
//! `content-length: 0` and `date`, at the very end of the bytes. weir's own
//! error answers never end that way: each carries a JSON body (see
//! `answer::as_json`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::accept::{MAX_HEAD_BYTES, MAX_HEADERS};
use super::answer;
use crate::error::ApiError;

/// hyper's own answer is shorter than this; only this much of a write's end
/// is looked at.
const TAIL: usize = 256;

pub struct JsonErrors<T> {
    inner: T,
    /// Bytes written in place of what hyper handed over, and how many of
    /// them are out.
    replacement: Vec<u8>,
    sent: usize,
}

impl<T> JsonErrors<T> {
    pub fn new(inner: T) -> Self {
        JsonErrors {
            inner,
            replacement: Vec::new(),
            sent: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.replacement.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.replacement[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.replacement = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if let Some((start, status)) = hypers_own_error(buf) {
            let mut replacement = buf[..start].to_vec();
            replacement.extend(answer::raw(&json_for(status)));
            this.replacement = replacement;
            // All of `buf` is taken; the replacement goes out on the flush
            // that hyper makes after every write.
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

/// Where hyper's own error answer starts in `buf`, and its status, if
/// `buf` ends with one.
fn hypers_own_error(buf: &[u8]) -> Option<(usize, StatusCode)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = buf.len().saturating_sub(TAIL);
    let start = from + buf[from..].windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    let head = std::str::from_utf8(&buf[start..buf.len() - 4]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.get(9..12)?.parse().ok()?;
    let status = match status {
        400 | 414 | 431 => StatusCode::from_u16(status).ok()?,
        _ => return None,
    };
    let mut empty = false;
    for line in lines {
        match line.split_once(": ")? {
            ("content-length", "0") => empty = true,
            ("connection", "close") | ("date", _) => {}
            _ => return None,
        }
    }
    empty.then_some((start, status))
}

fn json_for(status: StatusCode) -> ApiError {
    let (code, message) = match status {
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request target is too long".to_owned()),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers_too_large",
            format!(
                "the request has too many or too large header fields (at most {MAX_HEADERS} fields and {} KiB)",
                MAX_HEAD_BYTES / 1024
            ),
        ),
        _ => (
            "bad_request",
            "the request is not valid HTTP/1.1: its request line, a header or its Content-Length is malformed".to_owned(),
        ),
    };
    ApiError::new(status, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n";

    #[test]
    fn recognises_hypers_answer_at_the_end_only() {
        assert_eq!(
            hypers_own_error(HYPER_400),
            Some((0, StatusCode::BAD_REQUEST))
        );
        let after = [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"[..],
            HYPER_400,
        ]
        .concat();
        assert_eq!(
            hypers_own_error(&after),
            Some((40, StatusCode::BAD_REQUEST))
        );
        let followed = [HYPER_400, b"x"].concat();
        assert_eq!(hypers_own_error(&followed), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hypers_own_error(with_body), None);
        let not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hypers_own_error(not_found), None);
    }

    #[tokio::test]
    async fn rewrites_it_with_a_json_body() {
        use tokio::io::AsyncWriteExt;
        let mut out = JsonErrors::new(Vec::new());
        out.write_all(HYPER_400).await.unwrap();
        out.flush().await.unwrap();
        let text = String::from_utf8(out.inner).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
    }
}
