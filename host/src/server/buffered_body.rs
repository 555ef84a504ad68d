//! A request body the host has read in full: its bytes and, if the client
//! sent any, its trailers, handed to the component in that order.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// A buffered body with optional trailers.
#[derive(Debug, Default)]
pub struct BufferedBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl BufferedBody {
    /// `data`, then `trailers` if any.
    pub fn new(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self { data: (!data.is_empty()).then_some(data), trailers }
    }
}

impl Body for BufferedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn yields_the_bytes_then_the_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
        let collected = BufferedBody::new(Bytes::from_static(b"hello"), Some(trailers)).collect().await;
        let collected = collected.unwrap_or_else(|never| match never {});
        assert_eq!(collected.trailers().and_then(|t| t.get("x-checksum")).map(|v| v.as_bytes()), Some(&b"abc"[..]));
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"hello"));
    }
}
