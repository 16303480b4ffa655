//! A real HTTP/1.1 endpoint on 127.0.0.1 for the worker tests: records every request and
//! answers the way the test says (a status and body, a hang, or a slow drip).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the endpoint answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A complete answer with this status and body.
    Respond { status: u16, body: Vec<u8> },
    /// Read the request, then never answer.
    Hang,
    /// Send a header promising a large body, then one byte every `every`.
    Drip { every: Duration },
    /// A redirect (`status` 301, 302, 307, 308 ...) to `location`.
    Redirect { status: u16, location: String },
    /// 200 with `body` and the header `Telemetry-Signature: signature`.
    Signed { body: Vec<u8>, signature: String },
}

impl Answer {
    /// 200 with `{"current_timescaledb_version": version}`.
    pub fn version(version: &str) -> Answer {
        Answer::json(200, &format!("{{\"current_timescaledb_version\": \"{version}\"}}"))
    }

    pub fn json(status: u16, body: &str) -> Answer {
        Answer::Respond { status, body: body.as_bytes().to_vec() }
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

struct Shared {
    answer: Mutex<Answer>,
    requests: Mutex<Vec<Request>>,
    /// How long each finished connection stayed open after its request arrived.
    held: Mutex<Vec<Duration>>,
    stop: AtomicBool,
    /// Answers wait while this is set.
    holding: AtomicBool,
}

/// The endpoint; stops accepting and releases hung connections on drop.
pub struct Endpoint {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Endpoint {
    pub fn start(answer: Answer) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            answer: Mutex::new(answer),
            requests: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            holding: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || serve(stream, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Endpoint { port, shared }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/metrics", self.port)
    }

    /// From now on, requests are recorded but not answered until [`Endpoint::release_answers`]
    /// (at most a minute).
    pub fn hold_answers(&self) {
        self.shared.holding.store(true, Ordering::SeqCst);
    }

    /// Answers the held requests, and every later one at once.
    pub fn release_answers(&self) {
        self.shared.holding.store(false, Ordering::SeqCst);
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = answer;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// How long each finished connection was held open by the client.
    pub fn held(&self) -> Vec<Duration> {
        self.shared.held.lock().unwrap().clone()
    }

    /// Requests whose body carries `db_uuid`.
    pub fn requests_for(&self, db_uuid: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.json()["db_uuid"] == db_uuid).collect()
    }

    /// Waits until at least `n` requests arrived; returns whether they did.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        super::wait_until(timeout, || self.count() >= n)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request { method, path, headers, body })
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let Some(request) = read_request(&mut stream) else { return };
    shared.requests.lock().unwrap().push(request);
    let arrived = Instant::now();
    while shared.holding.load(Ordering::SeqCst) && arrived.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    answer(&mut stream, shared);
    shared.held.lock().unwrap().push(arrived.elapsed());
}

fn answer(stream: &mut TcpStream, shared: &Shared) {
    let answer = shared.answer.lock().unwrap().clone();
    // Hung and dripping answers end by themselves after 10 minutes at most.
    let give_up = Instant::now() + Duration::from_secs(600);
    match answer {
        Answer::Respond { status, body } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
        Answer::Signed { body, signature } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTelemetry-Signature: {signature}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
        Answer::Redirect { status, location } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
        }
        Answer::Hang => {
            // Say nothing; notice when the client gives up and closes.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
            let mut buf = [0u8; 1024];
            while !shared.stop.load(Ordering::SeqCst) && Instant::now() < give_up {
                match stream.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        }
        Answer::Drip { every } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            while !shared.stop.load(Ordering::SeqCst) && Instant::now() < give_up {
                if stream.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(every);
            }
        }
    }
}
