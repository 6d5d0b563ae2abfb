//! A tiny scripted HTTP/1.1 server for unit tests: it records every request and answers with
//! whatever the test's closure returns. Lets the real SDK and kube clients run end to end
//! (serialisation, protocol, error parsing) against canned responses, including the AWS calls
//! moto does not implement.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A request as received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Captured {
    /// The body as an `application/x-www-form-urlencoded` map (AWS Query protocol).
    pub fn form(&self) -> BTreeMap<String, String> {
        self.body
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}

/// A canned response.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn xml(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/xml",
            body: body.into(),
        }
    }
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
    /// An AWS JSON-protocol (DynamoDB) reply.
    pub fn aws_json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/x-amz-json-1.0",
            body: body.to_string(),
        }
    }
}

type Handler = dyn Fn(&Captured) -> Reply + Send + Sync;

/// The running server; stops when the test's runtime ends.
pub struct Server {
    pub url: String,
    requests: Arc<Mutex<Vec<Captured>>>,
}

impl Server {
    pub async fn start(handler: impl Fn(&Captured) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    // Keep-alive: serve requests until the client closes.
                    while let Some(req) = read_request(&mut read).await {
                        let reply = handler(&req);
                        log.lock().unwrap().push(req);
                        let head = format!(
                            "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-amzn-requestid: test\r\n\r\n",
                            reply.status,
                            reply.content_type,
                            reply.body.len()
                        );
                        if write.write_all(head.as_bytes()).await.is_err()
                            || write.write_all(reply.body.as_bytes()).await.is_err()
                        {
                            break;
                        }
                    }
                });
            }
        });
        Server { url, requests }
    }

    /// A server answering with `replies` in order, then with `otherwise` for every later request.
    pub async fn scripted(
        replies: Vec<Reply>,
        otherwise: impl Fn(&Captured) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let queue = Mutex::new(std::collections::VecDeque::from(replies));
        Server::start(move |r: &Captured| {
            let next = queue.lock().unwrap().pop_front();
            next.unwrap_or_else(|| otherwise(r))
        })
        .await
    }

    /// For [`Server::scripted`]: a request beyond the script fails the test.
    pub fn unexpected(r: &Captured) -> Reply {
        panic!(
            "unexpected request beyond the script: {} {}",
            r.method, r.target
        )
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }
}

async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<Captured> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.ok()?;
    Some(Captured {
        method,
        target,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}
