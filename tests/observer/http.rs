//! A small HTTP/1.1 client for the observer tests (hyper's own client over a loopback socket), and
//! a reader of server-sent events.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// The longest any wait in these tests may take: a bound against hanging, never what orders
/// anything.
pub const WAIT: Duration = Duration::from_secs(10);

/// A response: status, headers, body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<hyper::Response<Incoming>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

/// Sends a request and reads the whole answer, or says why it could not.
pub async fn try_request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let response = tokio::time::timeout(WAIT, send(addr, method, path, headers))
        .await
        .map_err(|_| format!("no answer to {path} within {WAIT:?}"))??;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect())
        .await
        .map_err(|_| format!("no whole body for {path} within {WAIT:?}"))?
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    try_request(addr, method, path, headers)
        .await
        .unwrap_or_else(|e| panic!("{method_path}: {e}", method_path = path))
}

pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, Method::GET, path, &[]).await
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.data))
    }

    /// The number of the event's id (`<boot>-<n>`).
    pub fn number(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.rsplit_once('-'))
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or_else(|| panic!("no numbered id: {self:?}"))
    }
}

/// An open `/events` stream.
pub struct Sse {
    pub status: StatusCode,
    body: Incoming,
    buffer: String,
}

impl Sse {
    pub async fn open(addr: SocketAddr, last_event_id: Option<&str>) -> Sse {
        let headers: Vec<(&str, &str)> = last_event_id
            .map(|id| vec![("last-event-id", id)])
            .unwrap_or_default();
        let response = tokio::time::timeout(WAIT, send(addr, Method::GET, "/events", &headers))
            .await
            .expect("an answer to /events")
            .expect("/events");
        let status = response.status();
        Sse {
            status,
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    ..SseEvent::default()
                };
                let mut fields = 0;
                for line in block.lines() {
                    if let Some((name, value)) = line.split_once(':') {
                        let value = value.strip_prefix(' ').unwrap_or(value);
                        match name {
                            "id" => event.id = Some(value.to_string()),
                            "event" => event.event = value.to_string(),
                            "data" => {
                                if !event.data.is_empty() {
                                    event.data.push('\n');
                                }
                                event.data.push_str(value);
                            }
                            _ => continue,
                        }
                        fields += 1;
                    }
                }
                if fields == 0 {
                    continue; // a keep-alive comment, or a retry line alone
                }
                return Some(event);
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("an event or the end of the stream within the wait")?;
            let frame = frame.ok()?;
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// The next event whose name is not `skip`.
    pub async fn until_not(&mut self, skip: &str) -> SseEvent {
        loop {
            let event = self.expect().await;
            if event.event != skip {
                return event;
            }
        }
    }

    /// The next event, which must be there.
    pub async fn expect(&mut self) -> SseEvent {
        self.next()
            .await
            .expect("an event, not the end of the stream")
    }
}

/// Waits until `probe` gives a value, re-checking every few milliseconds, for at most [`WAIT`]: for
/// states read from outside (the tree, an endpoint) that announce no change.
pub async fn until<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    until_within(WAIT, what, probe).await
}

/// [`until`] with another bound (a browser's cold start, on a busy machine).
pub async fn until_within<T>(
    bound: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {bound:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A loopback listener on a free port.
pub fn listener() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let addr = listener.local_addr().expect("its address");
    (listener, addr)
}
