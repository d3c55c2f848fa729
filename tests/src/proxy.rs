//! A loopback HTTP proxy between a tool and an AWS endpoint (moto or the fake EC2): it counts every
//! request by operation, the same way for every tool, and injects faults on request.
//!
//! Point the tool at [`Proxy::endpoint`] (`AWS_ENDPOINT_URL`, or the SDK's endpoint override).
//! Requests are read whole, forwarded on a fresh upstream connection and answered with the whole
//! upstream response, so a fault can drop, delay, rewrite or replace any single exchange.
//!
//! Operations are named as the SDKs name them: the EC2/STS query `Action=` (form body or URL), the
//! JSON protocols' `X-Amz-Target` suffix, and for S3 a name from the method and path shape
//! (`PutObject`, `GetObject`, `ListObjects`, ...).
//!
//! ```no_run
//! use reaper_e2e::proxy::{Fault, Proxy};
//! let proxy = Proxy::start("http://127.0.0.1:5000");
//! proxy.fault_script("TerminateInstances", [Some(Fault::Throttle), None]);
//! proxy.fault_rate("DescribeInstances", Fault::Unavailable, 0.1, 42);
//! // ... run the tool against proxy.endpoint() ...
//! let calls = proxy.calls(); // {"DescribeInstances": 3, "TerminateInstances": 2}
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// What the proxy does to one request instead of (or on top of) forwarding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 with EC2's `RequestLimitExceeded` XML error; not forwarded.
    Throttle,
    /// A plain HTTP 503 `Service Unavailable` with no AWS error body; not forwarded.
    Unavailable,
    /// The client's connection is reset (RST) before anything is forwarded.
    ResetBeforeForward,
    /// The request is forwarded (upstream acts on it), then the client's connection is reset:
    /// the answer is lost.
    ResetAfterForward,
    /// Forwarded normally after this pause.
    Delay(Duration),
    /// The connection is accepted and never answered (until the proxy stops).
    Hang,
    /// A request carrying `NextToken` gets HTTP 500 `InternalError`, not forwarded; a request
    /// without one passes untouched (a fault on a later page, not on the first).
    FailPage,
    /// The response gets a `nextToken` that leads back to the first page, for ever (while the
    /// fault keeps firing): the proxy strips its own tokens from requests before forwarding.
    EndlessNextToken,
    /// A response to a request carrying `NextToken` starts with the last reservation of the
    /// previous DescribeInstances response again (pages that overlap).
    OverlappingPage,
}

impl Fault {
    /// A short stable name, used as the key of [`Proxy::injected`].
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttle => "Throttle",
            Fault::Unavailable => "Unavailable",
            Fault::ResetBeforeForward => "ResetBeforeForward",
            Fault::ResetAfterForward => "ResetAfterForward",
            Fault::Delay(_) => "Delay",
            Fault::Hang => "Hang",
            Fault::FailPage => "FailPage",
            Fault::EndlessNextToken => "EndlessNextToken",
            Fault::OverlappingPage => "OverlappingPage",
        }
    }
}

/// Rewrites the body of every forwarded response: `(operation, body)`. For harnesses that need a
/// view upstream cannot give (the bench backdates launch times this way).
pub type Rewrite = Arc<dyn Fn(&str, &mut Vec<u8>) + Send + Sync>;

enum Schedule {
    /// Fires with probability `rate` per matching request, from a seeded generator: the same
    /// seed gives the same sequence of faults for the same sequence of requests.
    Rate { fault: Fault, rate: f64, rng: u64 },
    /// One entry per matching request, in order; once exhausted, requests pass.
    Script(VecDeque<Option<Fault>>),
}

struct Rule {
    operation: String,
    schedule: Schedule,
}

impl Rule {
    fn matches(&self, operation: &str) -> bool {
        self.operation == "*" || self.operation == operation
    }

    fn next(&mut self) -> Option<Fault> {
        match &mut self.schedule {
            Schedule::Rate { fault, rate, rng } => {
                // xorshift64*: tiny, deterministic, good enough to spread faults.
                *rng ^= *rng >> 12;
                *rng ^= *rng << 25;
                *rng ^= *rng >> 27;
                let draw = rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
                let unit = draw as f64 / (1u64 << 53) as f64;
                (unit < *rate).then(|| fault.clone())
            }
            Schedule::Script(script) => script.pop_front().flatten(),
        }
    }
}

#[derive(Default)]
struct State {
    calls: BTreeMap<String, u64>,
    forwarded: BTreeMap<String, u64>,
    injected: BTreeMap<String, u64>,
    rules: Vec<Rule>,
    rewrite: Option<Rewrite>,
    /// The last top-level reservation `<item>` of the last DescribeInstances response.
    last_reservation: Option<String>,
    /// Open client connections by number, to close them when the proxy stops.
    clients: BTreeMap<u64, TcpStream>,
}

struct Shared {
    state: Mutex<State>,
    upstream: String,
    stopping: AtomicBool,
    endless: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The proxy, listening on `127.0.0.1:<free port>`; stopped on drop (or [`Proxy::stop`]).
pub struct Proxy {
    shared: Arc<Shared>,
    port: u16,
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`http://HOST:PORT`, plain HTTP only).
    pub fn start(upstream: &str) -> Proxy {
        let authority = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| {
                panic!("reaper-e2e proxy: upstream {upstream:?} must be http://HOST:PORT")
            })
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("reaper-e2e proxy: cannot bind 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            upstream: authority,
            stopping: AtomicBool::new(false),
            endless: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("proxy-accept".into())
                .spawn(move || accept(listener, shared))
                .expect("spawn the proxy thread")
        };
        Proxy {
            shared,
            port,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests received, by operation, faulted ones included (what the tool paid for).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.shared.lock().calls.clone()
    }

    /// Requests that reached upstream, by operation.
    pub fn forwarded(&self) -> BTreeMap<String, u64> {
        self.shared.lock().forwarded.clone()
    }

    /// Faults injected, by `"<operation> <fault name>"`.
    pub fn injected(&self) -> BTreeMap<String, u64> {
        self.shared.lock().injected.clone()
    }

    /// Total requests received.
    pub fn total_calls(&self) -> u64 {
        self.shared.lock().calls.values().sum()
    }

    /// Zeroes the three counters (faults and the rewrite stay).
    pub fn reset_counts(&self) {
        let mut state = self.shared.lock();
        state.calls.clear();
        state.forwarded.clear();
        state.injected.clear();
    }

    /// Injects `fault` into each request of `operation` (`"*"`: any) with probability `rate`
    /// (0.0..=1.0), drawn from a generator seeded with `seed`.
    pub fn fault_rate(&self, operation: &str, fault: Fault, rate: f64, seed: u64) {
        let rule = Rule {
            operation: operation.to_owned(),
            // A zero state would stay zero; mix the seed so 0 works too.
            schedule: Schedule::Rate {
                fault,
                rate: rate.clamp(0.0, 1.0),
                rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            },
        };
        self.shared.lock().rules.push(rule);
    }

    /// Scripts the next requests of `operation` (`"*"`: any), one entry each, in order: `None`
    /// passes, `Some(fault)` injects it. Requests after the script pass.
    pub fn fault_script(&self, operation: &str, script: impl IntoIterator<Item = Option<Fault>>) {
        let rule = Rule {
            operation: operation.to_owned(),
            schedule: Schedule::Script(script.into_iter().collect()),
        };
        self.shared.lock().rules.push(rule);
    }

    /// Removes every fault rule (counters stay).
    pub fn clear_faults(&self) {
        self.shared.lock().rules.clear();
    }

    /// Installs (or with `None` removes) a rewrite of every forwarded response body.
    pub fn set_rewrite(&self, rewrite: Option<Rewrite>) {
        self.shared.lock().rewrite = rewrite;
    }

    /// Stops accepting, closes every client connection (hung ones too) and joins the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept with one connection of our own.
        let _ =
            TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1));
        for client in std::mem::take(&mut self.shared.lock().clients).into_values() {
            let _ = client.shutdown(Shutdown::Both);
        }
        let handlers = acceptor.join();
        // A connection accepted while stopping began is registered by now: close it too.
        for client in std::mem::take(&mut self.shared.lock().clients).into_values() {
            let _ = client.shutdown(Shutdown::Both);
        }
        if let Ok(handlers) = handlers {
            for handler in handlers {
                let _ = handler.join();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    for (number, stream) in (0u64..).zip(listener.incoming()) {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        if let Ok(clone) = stream.try_clone() {
            shared.lock().clients.insert(number, clone);
        }
        let shared = Arc::clone(&shared);
        handlers.retain(|h| !h.is_finished());
        handlers.push(thread::spawn(move || {
            serve(stream, &shared);
            shared.lock().clients.remove(&number);
        }));
    }
    handlers
}

/// One client connection: requests one after another (keep-alive) until it closes.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    while !shared.stopping.load(Ordering::SeqCst) {
        let request = match read_message(&mut reader, Kind::Request) {
            Ok(Some(m)) => m,
            _ => break,
        };
        let keep_alive = !request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        match exchange(request, shared) {
            Outcome::Respond(response) => {
                if write_response(&mut writer, &response, keep_alive).is_err() || !keep_alive {
                    break;
                }
            }
            Outcome::Reset => {
                reset(&writer);
                break;
            }
            Outcome::Hang => {
                while !shared.stopping.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(20));
                }
                break;
            }
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

enum Outcome {
    Respond(Message),
    Reset,
    Hang,
}

fn exchange(mut request: Message, shared: &Shared) -> Outcome {
    let operation = operation(&request);
    let has_token = param(&request, "NextToken").is_some();
    let fault = {
        let mut state = shared.lock();
        *state.calls.entry(operation.clone()).or_default() += 1;
        let fault = state
            .rules
            .iter_mut()
            .filter(|r| r.matches(&operation))
            .find_map(Rule::next);
        // These two act only on later pages; on a first page they are not injected (nor counted).
        let fault =
            fault.filter(|f| has_token || !matches!(f, Fault::FailPage | Fault::OverlappingPage));
        if let Some(f) = &fault {
            *state
                .injected
                .entry(format!("{operation} {}", f.name()))
                .or_default() += 1;
        }
        fault
    };
    match &fault {
        Some(Fault::Throttle) => return Outcome::Respond(throttled()),
        Some(Fault::Unavailable) => return Outcome::Respond(unavailable()),
        Some(Fault::ResetBeforeForward) => return Outcome::Reset,
        Some(Fault::Hang) => return Outcome::Hang,
        Some(Fault::FailPage) => return Outcome::Respond(internal_error()),
        Some(Fault::Delay(pause)) => sleep_unless_stopping(*pause, shared),
        _ => {}
    }
    // The proxy's own endless tokens never reach upstream: the tool is sent back to page one.
    if param(&request, "NextToken").is_some_and(|t| t.starts_with(ENDLESS_PREFIX)) {
        strip_form_param(&mut request, "NextToken");
    }
    let mut response = match forward(&request, &shared.upstream) {
        Ok(response) => response,
        Err(err) => return Outcome::Respond(bad_gateway(&shared.upstream, &err)),
    };
    let rewrite = {
        let mut state = shared.lock();
        *state.forwarded.entry(operation.clone()).or_default() += 1;
        state.rewrite.clone()
    };
    if let Some(rewrite) = rewrite {
        rewrite(&operation, &mut response.body);
    }
    if operation == "DescribeInstances" && response.status == 200 {
        let previous = {
            let body = String::from_utf8_lossy(&response.body);
            let last = top_level_items(&body, "reservationSet")
                .last()
                .map(|&(s, e)| body[s..e].to_owned());
            let mut state = shared.lock();
            match last {
                Some(last) => state.last_reservation.replace(last),
                None => state.last_reservation.clone(),
            }
        };
        match &fault {
            Some(Fault::OverlappingPage) => {
                if let Some(previous) = previous {
                    insert_after_open(&mut response.body, "reservationSet", &previous);
                }
            }
            Some(Fault::EndlessNextToken) => {
                let n = shared.endless.fetch_add(1, Ordering::SeqCst);
                set_next_token(&mut response.body, &format!("{ENDLESS_PREFIX}{n}"));
            }
            _ => {}
        }
    }
    if fault == Some(Fault::ResetAfterForward) {
        return Outcome::Reset;
    }
    Outcome::Respond(response)
}

const ENDLESS_PREFIX: &str = "proxy-endless-";

fn sleep_unless_stopping(pause: Duration, shared: &Shared) {
    let step = Duration::from_millis(10);
    let mut left = pause;
    while !left.is_zero() && !shared.stopping.load(Ordering::SeqCst) {
        let now = left.min(step);
        thread::sleep(now);
        left -= now;
    }
}

/// Closes with RST rather than FIN (linger on, timeout zero): the client sees "connection reset".
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor we own and a correctly sized `linger` value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// An HTTP/1.1 request or response, read whole.
#[derive(Clone, Debug)]
pub struct Message {
    /// Request: `METHOD TARGET HTTP/1.1`; response: `HTTP/1.1 STATUS REASON`.
    pub start: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or_default()
    }

    fn target(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("/")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Request,
    Response,
}

/// Reads one message; `Ok(None)` on a clean end of stream before its first byte.
fn read_message(reader: &mut impl BufRead, kind: Kind) -> io::Result<Option<Message>> {
    let mut start = String::new();
    if reader.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let start = start.trim_end().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "headers cut short",
            ));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let status = if kind == Kind::Response {
        start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    let mut message = Message {
        start,
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = message
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    if chunked {
        message.body = read_chunked(reader)?;
    } else if let Some(length) = length {
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        message.body = body;
    } else if kind == Kind::Response && !matches!(status, 204 | 304) {
        reader.read_to_end(&mut message.body)?;
    }
    Ok(Some(message))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = size.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

fn forward(request: &Message, upstream: &str) -> io::Result<Message> {
    let address = upstream
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "upstream has no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
    stream.set_nodelay(true)?;
    // moto answers a 100 000-instance listing slowly; nothing the bench runs takes this long.
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method(), request.target());
    for (k, v) in &request.headers {
        if !HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        request.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(&request.body)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    read_message(&mut reader, Kind::Response)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "upstream closed without answering",
        )
    })
}

fn write_response(out: &mut impl Write, response: &Message, keep_alive: bool) -> io::Result<()> {
    let mut head = format!("{}\r\n", response.start);
    for (k, v) in &response.headers {
        if !HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: {}\r\n\r\n",
        response.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    ));
    out.write_all(head.as_bytes())?;
    out.write_all(&response.body)?;
    out.flush()
}

fn canned(status: u16, reason: &str, content_type: &str, body: String) -> Message {
    Message {
        start: format!("HTTP/1.1 {status} {reason}"),
        status,
        headers: vec![("Content-Type".into(), content_type.into())],
        body: body.into_bytes(),
    }
}

fn ec2_error(status: u16, reason: &str, code: &str, message: &str) -> Message {
    canned(
        status,
        reason,
        "text/xml",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{message}</Message></Error></Errors><RequestID>proxy-fault</RequestID></Response>"
        ),
    )
}

fn throttled() -> Message {
    ec2_error(
        503,
        "Service Unavailable",
        "RequestLimitExceeded",
        "Request limit exceeded.",
    )
}

fn unavailable() -> Message {
    canned(
        503,
        "Service Unavailable",
        "text/plain",
        "Service Unavailable".into(),
    )
}

fn internal_error() -> Message {
    ec2_error(
        500,
        "Internal Server Error",
        "InternalError",
        "An internal error has occurred (injected on a later page).",
    )
}

fn bad_gateway(upstream: &str, err: &io::Error) -> Message {
    canned(
        502,
        "Bad Gateway",
        "text/plain",
        format!("reaper-e2e proxy: upstream {upstream} failed: {err}"),
    )
}

/// The operation a request calls, named as the SDKs name it.
pub fn operation(request: &Message) -> String {
    if let Some(target) = request.header("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    if let Some(action) = param(request, "Action") {
        return action;
    }
    s3_operation(request)
}

fn s3_operation(request: &Message) -> String {
    let (path, query) = request
        .target()
        .split_once('?')
        .unwrap_or((request.target(), ""));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method();
    let name = match (segments.len(), method) {
        (0, "GET") => "ListBuckets",
        (1, "PUT") => "CreateBucket",
        (1, "GET") if query.contains("list-type=2") => "ListObjectsV2",
        (1, "GET") => "ListObjects",
        (1, "HEAD") => "HeadBucket",
        (1, "DELETE") => "DeleteBucket",
        (_, "PUT") if request.header("x-amz-copy-source").is_some() => "CopyObject",
        (_, "PUT") => "PutObject",
        (_, "GET") => "GetObject",
        (_, "HEAD") => "HeadObject",
        (_, "DELETE") => "DeleteObject",
        _ => {
            return format!(
                "{method} {}",
                if segments.len() > 1 {
                    "object"
                } else {
                    "bucket"
                }
            )
        }
    };
    name.to_owned()
}

/// A query-protocol parameter, from a form body or the URL's query string.
fn param(request: &Message, name: &str) -> Option<String> {
    let form = request
        .header("content-type")
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let from_body = form
        .then(|| form_value(&String::from_utf8_lossy(&request.body), name))
        .flatten();
    from_body.or_else(|| {
        request
            .target()
            .split_once('?')
            .and_then(|(_, q)| form_value(q, name))
    })
}

fn form_value(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn strip_form_param(request: &mut Message, name: &str) {
    let body = String::from_utf8_lossy(&request.body).into_owned();
    let kept: Vec<&str> = body
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect();
    request.body = kept.join("&").into_bytes();
}

/// Byte ranges of the top-level `<item>` children of the first `<set>` element of `xml`.
pub fn top_level_items(xml: &str, set: &str) -> Vec<(usize, usize)> {
    let open = format!("<{set}>");
    let close = format!("</{set}>");
    let Some(start) = xml.find(&open).map(|i| i + open.len()) else {
        return Vec::new();
    };
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut item_start = 0;
    let mut i = start;
    while i < xml.len() {
        let rest = &xml[i..];
        if rest.starts_with("<item>") {
            if depth == 0 {
                item_start = i;
            }
            depth += 1;
            i += "<item>".len();
        } else if rest.starts_with("</item>") {
            depth = depth.saturating_sub(1);
            i += "</item>".len();
            if depth == 0 {
                items.push((item_start, i));
            }
        } else if depth == 0 && rest.starts_with(&close) {
            break;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    items
}

fn insert_after_open(body: &mut Vec<u8>, set: &str, fragment: &str) {
    let text = String::from_utf8_lossy(body).into_owned();
    let open = format!("<{set}>");
    if let Some(at) = text.find(&open).map(|i| i + open.len()) {
        let mut out = String::with_capacity(text.len() + fragment.len());
        out.push_str(&text[..at]);
        out.push_str(fragment);
        out.push_str(&text[at..]);
        *body = out.into_bytes();
    }
}

fn set_next_token(body: &mut Vec<u8>, token: &str) {
    let mut text = String::from_utf8_lossy(body).into_owned();
    if let (Some(s), Some(e)) = (text.find("<nextToken>"), text.find("</nextToken>")) {
        text.replace_range(s..e + "</nextToken>".len(), "");
    }
    if let Some(at) = text.rfind("</") {
        text.insert_str(at, &format!("<nextToken>{token}</nextToken>"));
    }
    *body = text.into_bytes();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// A tiny upstream: answers every request with `answer(form body)` and records the bodies.
    struct Upstream {
        endpoint: String,
        seen: Arc<Mutex<Vec<String>>>,
        _server: Arc<tiny_http::Server>,
    }

    fn upstream(answer: fn(&str) -> String) -> Upstream {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let endpoint = format!("http://{}", server.server_addr().to_ip().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (Arc::clone(&server), Arc::clone(&seen));
        thread::spawn(move || {
            for mut request in s.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                if body.is_empty() {
                    body = request.url().to_owned();
                }
                r.lock().unwrap().push(body.clone());
                let _ = request.respond(tiny_http::Response::from_string(answer(&body)));
            }
        });
        Upstream {
            endpoint,
            seen,
            _server: server,
        }
    }

    fn echo(body: &str) -> String {
        format!("<EchoResponse><got>{body}</got></EchoResponse>")
    }

    fn post(proxy: &Proxy, form: &str) -> Result<(u16, String), String> {
        let agent = crate::net::agent(Duration::from_secs(2));
        agent
            .post(&proxy.endpoint())
            .header("content-type", "application/x-www-form-urlencoded")
            .send(form)
            .map_err(|e| e.to_string())
            .map(|mut r| {
                (
                    r.status().as_u16(),
                    r.body_mut().read_to_string().unwrap_or_default(),
                )
            })
    }

    #[test]
    fn counts_query_json_and_s3_operations_and_forwards_bodies() {
        let up = upstream(echo);
        let proxy = Proxy::start(&up.endpoint);
        let (status, body) = post(&proxy, "Action=DescribeInstances&Version=2016-11-15").unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("Action=DescribeInstances"), "{body}");
        post(&proxy, "Action=DescribeInstances&NextToken=abc").unwrap();
        let agent = crate::net::agent(Duration::from_secs(2));
        agent
            .post(&proxy.endpoint())
            .header("x-amz-target", "AmazonSSM.GetParameter")
            .send("{}")
            .unwrap();
        agent
            .put(&format!("{}/bucket/reports/a.json", proxy.endpoint()))
            .send("{}")
            .unwrap();
        agent
            .get(&format!("{}/?Action=GetCallerIdentity", proxy.endpoint()))
            .call()
            .unwrap();
        assert_eq!(
            proxy.calls(),
            BTreeMap::from([
                ("DescribeInstances".to_owned(), 2),
                ("GetCallerIdentity".to_owned(), 1),
                ("GetParameter".to_owned(), 1),
                ("PutObject".to_owned(), 1),
            ])
        );
        assert_eq!(proxy.forwarded(), proxy.calls());
        assert_eq!(up.seen.lock().unwrap().len(), 5);
    }

    #[test]
    fn throttle_answers_ec2_request_limit_exceeded_without_forwarding() {
        let up = upstream(echo);
        let proxy = Proxy::start(&up.endpoint);
        proxy.fault_script("TerminateInstances", [Some(Fault::Throttle)]);
        let (status, body) = post(&proxy, "Action=TerminateInstances&InstanceId.1=i-1").unwrap();
        assert_eq!(status, 503);
        assert!(body.contains("<Code>RequestLimitExceeded</Code>"), "{body}");
        assert!(up.seen.lock().unwrap().is_empty());
        // The script is spent: the next one passes.
        assert_eq!(post(&proxy, "Action=TerminateInstances").unwrap().0, 200);
        assert_eq!(proxy.calls()["TerminateInstances"], 2);
        assert_eq!(proxy.forwarded()["TerminateInstances"], 1);
        assert_eq!(proxy.injected()["TerminateInstances Throttle"], 1);
    }

    #[test]
    fn a_script_applies_to_its_operation_only_and_in_order() {
        let up = upstream(echo);
        let proxy = Proxy::start(&up.endpoint);
        proxy.fault_script(
            "StopInstances",
            [None, Some(Fault::Unavailable), None, Some(Fault::Throttle)],
        );
        let statuses: Vec<u16> = (0..5)
            .map(|_| post(&proxy, "Action=StopInstances").unwrap().0)
            .collect();
        assert_eq!(statuses, [200, 503, 200, 503, 200]);
        assert_eq!(post(&proxy, "Action=CreateTags").unwrap().0, 200);
        let (_, body) = {
            proxy.fault_script("*", [Some(Fault::Unavailable)]);
            post(&proxy, "Action=CreateTags").unwrap()
        };
        assert_eq!(body, "Service Unavailable");
    }

    #[test]
    fn a_seeded_rate_repeats_exactly_and_hits_about_its_rate() {
        let up = upstream(echo);
        let pattern = |seed| {
            let proxy = Proxy::start(&up.endpoint);
            proxy.fault_rate("DescribeInstances", Fault::Throttle, 0.3, seed);
            (0..200)
                .map(|_| post(&proxy, "Action=DescribeInstances").unwrap().0 == 503)
                .collect::<Vec<bool>>()
        };
        let first = pattern(7);
        assert_eq!(first, pattern(7), "same seed, same faults");
        assert_ne!(first, pattern(8), "another seed, other faults");
        let hits = first.iter().filter(|&&h| h).count();
        assert!((35..=85).contains(&hits), "{hits} of 200 at rate 0.3");
    }

    #[test]
    fn reset_before_forward_never_reaches_upstream_and_after_forward_does() {
        let up = upstream(echo);
        let proxy = Proxy::start(&up.endpoint);
        proxy.fault_script("TerminateInstances", [Some(Fault::ResetBeforeForward)]);
        assert!(post(&proxy, "Action=TerminateInstances").is_err());
        assert_eq!(up.seen.lock().unwrap().len(), 0);
        proxy.fault_script("StopInstances", [Some(Fault::ResetAfterForward)]);
        assert!(post(&proxy, "Action=StopInstances&InstanceId.1=i-1").is_err());
        assert_eq!(
            up.seen.lock().unwrap().as_slice(),
            ["Action=StopInstances&InstanceId.1=i-1"]
        );
        assert_eq!(proxy.forwarded().get("TerminateInstances"), None);
        assert_eq!(proxy.forwarded()["StopInstances"], 1);
    }

    #[test]
    fn delay_holds_the_answer_and_hang_never_answers_but_stop_returns() {
        let up = upstream(echo);
        let proxy = Proxy::start(&up.endpoint);
        proxy.fault_script(
            "CreateTags",
            [Some(Fault::Delay(Duration::from_millis(300)))],
        );
        let started = Instant::now();
        assert_eq!(post(&proxy, "Action=CreateTags").unwrap().0, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));

        proxy.fault_script("DescribeInstances", [Some(Fault::Hang)]);
        let started = Instant::now();
        assert!(
            post(&proxy, "Action=DescribeInstances").is_err(),
            "a hung call times out"
        );
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert_eq!(proxy.forwarded().get("DescribeInstances"), None);
        let (done, finished) = mpsc::channel();
        thread::spawn(move || {
            proxy.stop();
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(3))
            .expect("stop() returns while a connection hangs");
    }

    fn pages(body: &str) -> String {
        let page = if body.contains("NextToken=t1") { 2 } else { 1 };
        let next = if page == 1 {
            "<nextToken>t1</nextToken>"
        } else {
            ""
        };
        format!(
            "<DescribeInstancesResponse><reservationSet><item><reservationId>r-{page}a</reservationId>\
             <instancesSet><item><instanceId>i-{page}a</instanceId><tagSet><item><key>k</key></item></tagSet></item></instancesSet></item>\
             <item><reservationId>r-{page}b</reservationId><instancesSet><item><instanceId>i-{page}b</instanceId></item></instancesSet></item>\
             </reservationSet>{next}</DescribeInstancesResponse>"
        )
    }

    #[test]
    fn fail_page_hits_only_requests_with_a_next_token() {
        let up = upstream(pages);
        let proxy = Proxy::start(&up.endpoint);
        proxy.fault_rate("DescribeInstances", Fault::FailPage, 1.0, 1);
        assert_eq!(post(&proxy, "Action=DescribeInstances").unwrap().0, 200);
        let (status, body) = post(&proxy, "Action=DescribeInstances&NextToken=t1").unwrap();
        assert_eq!(status, 500);
        assert!(body.contains("<Code>InternalError</Code>"));
        assert_eq!(proxy.injected()["DescribeInstances FailPage"], 1);
    }

    #[test]
    fn endless_next_token_sends_the_tool_back_to_page_one() {
        let up = upstream(pages);
        let proxy = Proxy::start(&up.endpoint);
        proxy.fault_rate("DescribeInstances", Fault::EndlessNextToken, 1.0, 1);
        let (_, first) = post(&proxy, "Action=DescribeInstances").unwrap();
        assert!(
            first.contains("<nextToken>proxy-endless-0</nextToken>"),
            "{first}"
        );
        assert!(!first.contains("<nextToken>t1</nextToken>"));
        let (_, second) =
            post(&proxy, "Action=DescribeInstances&NextToken=proxy-endless-0").unwrap();
        assert!(second.contains("i-1a"), "page one again: {second}");
        assert!(second.contains("<nextToken>proxy-endless-1</nextToken>"));
        assert_eq!(up.seen.lock().unwrap()[1], "Action=DescribeInstances");
    }

    #[test]
    fn overlapping_page_repeats_the_previous_last_reservation() {
        let up = upstream(pages);
        let proxy = Proxy::start(&up.endpoint);
        proxy.fault_script(
            "DescribeInstances",
            [Some(Fault::OverlappingPage), Some(Fault::OverlappingPage)],
        );
        let (_, first) = post(&proxy, "Action=DescribeInstances").unwrap();
        assert!(!first
            .contains("i-1b</instanceId></item></instancesSet></item><item><reservationId>r-1b"));
        let (_, second) = post(&proxy, "Action=DescribeInstances&NextToken=t1").unwrap();
        let ids: Vec<&str> = top_level_items(&second, "reservationSet")
            .iter()
            .map(|&(s, e)| &second[s..e])
            .map(|item| {
                let s = item.find("<instanceId>").unwrap() + "<instanceId>".len();
                &item[s..item.find("</instanceId>").unwrap()]
            })
            .collect();
        assert_eq!(ids, ["i-1b", "i-2a", "i-2b"]);
        // Only the later page counts as injected: the first page had no token.
        assert_eq!(proxy.injected()["DescribeInstances OverlappingPage"], 1);
    }

    #[test]
    fn top_level_items_skip_nested_items() {
        let xml = "<x><reservationSet><item><a><item>1</item></a></item><item>2</item></reservationSet><item>3</item></x>";
        let items: Vec<&str> = top_level_items(xml, "reservationSet")
            .iter()
            .map(|&(s, e)| &xml[s..e])
            .collect();
        assert_eq!(
            items,
            ["<item><a><item>1</item></a></item>", "<item>2</item>"]
        );
    }

    #[test]
    fn rewrite_sees_every_forwarded_body() {
        let up = upstream(echo);
        let proxy = Proxy::start(&up.endpoint);
        proxy.set_rewrite(Some(Arc::new(|op: &str, body: &mut Vec<u8>| {
            body.extend_from_slice(format!("<!-- {op} -->").as_bytes());
        })));
        let (_, body) = post(&proxy, "Action=CreateTags").unwrap();
        assert!(body.ends_with("<!-- CreateTags -->"), "{body}");
    }

    /// The real SDK through the proxy against moto: a throttled first attempt is retried, and the
    /// proxy counts both attempts as the reaper's own counter would.
    #[tokio::test]
    async fn the_sdk_retries_a_throttle_through_the_proxy_against_moto() {
        let moto = crate::Moto::start();
        let proxy = Proxy::start(&moto.endpoint());
        proxy.fault_script("DescribeInstances", [Some(Fault::Throttle)]);
        let config = aws_sdk_ec2::config::Builder::from(&moto.sdk_config("eu-west-1"))
            .endpoint_url(proxy.endpoint())
            .build();
        let ec2 = aws_sdk_ec2::Client::from_conf(config);
        let out = ec2.describe_instances().send().await;
        assert!(out.is_ok(), "{out:?}");
        assert_eq!(proxy.calls()["DescribeInstances"], 2);
        assert_eq!(proxy.forwarded()["DescribeInstances"], 1);
    }
}
