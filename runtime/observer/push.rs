//! The final export: a Pushgateway client on hyper (already under axum), no TLS.

use std::fmt;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

/// Where and how to push the last metrics: a Prometheus Pushgateway's URL, a job and a grouping
/// key. The push is an HTTP `PUT` of the text format to
/// `<url>/metrics/job/<job>/<label>/<value>…`, which replaces every metric of that group: the
/// group then holds the process's last reading and nothing older. Plain `http://` only; put a
/// local Pushgateway or a proxy in front of a remote one.
///
/// ```
/// use canopy::observer::Pushgateway;
/// let gateway = Pushgateway::new("http://127.0.0.1:9091", "billing")
///     .unwrap()
///     .label("instance", "billing-7f9c");
/// assert_eq!(gateway.path(), "/metrics/job/billing/instance/billing-7f9c");
/// ```
#[derive(Clone)]
pub struct Pushgateway {
    authority: String,
    prefix: String,
    job: String,
    grouping: Vec<(String, String)>,
    timeout: Duration,
}

impl fmt::Debug for Pushgateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pushgateway(http://{}{})", self.authority, self.path())
    }
}

/// Why a push failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PushError {
    /// The URL is not `http://host[:port][/prefix]`, or the job or a label name is empty.
    InvalidUrl(String),
    /// The Pushgateway could not be reached.
    Connect(std::io::Error),
    /// The HTTP exchange failed.
    Http(String),
    /// The Pushgateway refused the push.
    Status {
        /// The HTTP status.
        status: u16,
        /// What it said.
        body: String,
    },
    /// No answer within the push's timeout.
    TimedOut(Duration),
    /// The metrics could not be encoded.
    Encode,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::InvalidUrl(why) => write!(f, "invalid Pushgateway: {why}"),
            PushError::Connect(e) => write!(f, "cannot reach the Pushgateway: {e}"),
            PushError::Http(e) => write!(f, "push failed: {e}"),
            PushError::Status { status, body } => {
                write!(f, "the Pushgateway answered {status}: {}", body.trim())
            }
            PushError::TimedOut(d) => write!(f, "no answer from the Pushgateway within {d:?}"),
            PushError::Encode => f.write_str("the metrics could not be encoded"),
        }
    }
}

impl std::error::Error for PushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PushError::Connect(e) => Some(e),
            _ => None,
        }
    }
}

impl Pushgateway {
    /// A Pushgateway at `url` (`http://host:port`, optionally with a path prefix), for `job`.
    /// Errors: [`PushError::InvalidUrl`].
    ///
    /// ```
    /// use canopy::observer::{PushError, Pushgateway};
    /// assert!(Pushgateway::new("http://pushgateway:9091", "api").is_ok());
    /// assert!(matches!(Pushgateway::new("https://x", "api"), Err(PushError::InvalidUrl(_))));
    /// assert!(matches!(Pushgateway::new("http://x", ""), Err(PushError::InvalidUrl(_))));
    /// ```
    pub fn new(url: &str, job: impl Into<String>) -> Result<Pushgateway, PushError> {
        let job = job.into();
        if job.is_empty() {
            return Err(PushError::InvalidUrl("the job name is empty".into()));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| PushError::InvalidUrl(format!("{url}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(PushError::InvalidUrl(format!(
                "{url}: only http:// is supported"
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| PushError::InvalidUrl(format!("{url}: no host")))?;
        let authority = match authority.port_u16() {
            Some(_) => authority.to_string(),
            None => format!("{}:80", authority.host()),
        };
        Ok(Pushgateway {
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
            job,
            grouping: Vec::new(),
            timeout: Duration::from_secs(5),
        })
    }

    /// Adds a label to the grouping key (e.g. `instance`), after the job.
    ///
    /// ```
    /// let gateway = canopy::observer::Pushgateway::new("http://127.0.0.1:9091", "api")
    ///     .unwrap()
    ///     .label("instance", "api-0")
    ///     .label("zone", "b");
    /// assert_eq!(gateway.path(), "/metrics/job/api/instance/api-0/zone/b");
    /// ```
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.grouping.push((name.into(), value.into()));
        self
    }

    /// How long a push may take (default 5 s). Within an [`App`](crate::app::App), the shutdown
    /// deadline bounds it too.
    ///
    /// ```
    /// let gateway = canopy::observer::Pushgateway::new("http://127.0.0.1:9091", "api")
    ///     .unwrap()
    ///     .timeout(std::time::Duration::from_secs(2));
    /// # let _ = gateway;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The request path for this job and grouping key. A value that is empty or has a character
    /// outside `[A-Za-z0-9._~-]` (a `/` in a path label) is sent in the Pushgateway's base64 form
    /// (`label@base64/…`).
    ///
    /// ```
    /// let gateway = canopy::observer::Pushgateway::new("http://127.0.0.1:9091/gw", "api")
    ///     .unwrap()
    ///     .label("tree", "/app/web");
    /// assert_eq!(gateway.path(), "/gw/metrics/job/api/tree@base64/L2FwcC93ZWI=");
    /// ```
    pub fn path(&self) -> String {
        let mut path = format!("{}/metrics", self.prefix);
        for (name, value) in std::iter::once(("job", self.job.as_str()))
            .chain(self.grouping.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        {
            if !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
            {
                path.push_str(&format!("/{name}/{value}"));
            } else {
                path.push_str(&format!("/{name}@base64/{}", base64_url(value.as_bytes())));
            }
        }
        path
    }

    /// Pushes `text` (Prometheus text format 0.0.4) with `PUT`.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), canopy::observer::PushError> {
    /// let gateway = canopy::observer::Pushgateway::new("http://127.0.0.1:9091", "api")?;
    /// gateway.push_text("up 1\n".to_string()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn push_text(&self, text: String) -> Result<(), PushError> {
        match tokio::time::timeout(self.timeout, self.put(text)).await {
            Ok(result) => result,
            Err(_) => Err(PushError::TimedOut(self.timeout)),
        }
    }

    /// Pushes what `registry` holds now.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), canopy::observer::PushError> {
    /// let registry = prometheus_client::registry::Registry::default();
    /// let gateway = canopy::observer::Pushgateway::new("http://127.0.0.1:9091", "api")?;
    /// gateway.push(&registry).await?;
    /// # Ok(()) }
    /// ```
    pub async fn push(
        &self,
        registry: &prometheus_client::registry::Registry,
    ) -> Result<(), PushError> {
        let text = crate::metrics::encode(registry).map_err(|_| PushError::Encode)?;
        self.push_text(text).await
    }

    async fn put(&self, text: String) -> Result<(), PushError> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(PushError::Connect)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PushError::Http(e.to_string()))?;
        // The connection is driven beside the request and ends with it.
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = Request::builder()
            .method(Method::PUT)
            .uri(self.path())
            .header(hyper::header::HOST, &self.authority)
            .header(
                hyper::header::CONTENT_TYPE,
                crate::metrics::TEXT_CONTENT_TYPE,
            )
            .body(Full::new(Bytes::from(text)))
            .map_err(|e| PushError::InvalidUrl(e.to_string()))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| PushError::Http(e.to_string()))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Err(PushError::Status {
                status: status.as_u16(),
                body,
            })
        }
        .await;
        conn.abort();
        result
    }
}

/// RFC 4648 base64 with the URL alphabet and padding, as the Pushgateway decodes it.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if bytes.is_empty() {
        // The Pushgateway's spelling of an empty value.
        return "=".to_string();
    }
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64_url;

    #[test]
    fn base64_matches_rfc_4648_test_vectors_in_the_url_alphabet() {
        let cases = [
            ("", "="),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("\u{fb}\u{ff}", "w7vDvw=="),
        ];
        for (input, expected) in cases {
            assert_eq!(base64_url(input.as_bytes()), expected, "{input:?}");
        }
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8=");
    }
}
