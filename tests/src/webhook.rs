//! A stand-in for a Slack incoming webhook, on loopback.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tiny_http::{Header, Request, Response, Server};

/// How the sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookMode {
    /// `200 ok`, as Slack does.
    Ok,
    /// This status with a short body (Slack uses e.g. 400 `invalid_payload`, 404 `no_service`).
    Status(u16),
    /// Reads the request, records it, and never answers until the sink is dropped.
    Hang,
}

/// One request the sink received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    /// The body as JSON, or a JSON string holding the raw text when it is not JSON.
    pub body: serde_json::Value,
}

#[derive(Default)]
struct State {
    requests: Vec<RecordedRequest>,
    /// Requests held open in [`WebhookMode::Hang`]; dropping them answers 500.
    held: Vec<Request>,
    shutdown: bool,
}

/// A webhook server in a background thread; shut down on drop.
pub struct WebhookSink {
    state: Arc<Mutex<State>>,
    port: u16,
    acceptor: Option<JoinHandle<()>>,
}

impl WebhookSink {
    pub fn start(mode: WebhookMode) -> WebhookSink {
        let server = Server::http("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("reaper-e2e: cannot start the webhook sink: {e}"));
        let port = server
            .server_addr()
            .to_ip()
            .expect("a TCP listener has an IP address")
            .port();
        let state: Arc<Mutex<State>> = Arc::default();
        let acceptor = {
            let state = Arc::clone(&state);
            thread::Builder::new()
                .name("webhook-sink".into())
                .spawn(move || serve(server, state, mode))
                .expect("spawn the webhook sink thread")
        };
        WebhookSink {
            state,
            port,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT/services/T000/B000/XXXX`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/services/T000/B000/XXXX", self.port)
    }

    /// The bodies received so far, in order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.lock()
            .requests
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }

    /// The requests received so far, with method, path and content type.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        lock(&self.state).shutdown = true;
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // Answer (500) and release whatever Hang mode held open.
        let held = std::mem::take(&mut lock(&self.state).held);
        drop(held);
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn serve(server: Server, state: Arc<Mutex<State>>, mode: WebhookMode) {
    while !lock(&state).shutdown {
        let mut request = match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let mut raw = String::new();
        let _ = request.as_reader().read_to_string(&mut raw);
        let recorded = RecordedRequest {
            method: request.method().to_string(),
            path: request.url().to_owned(),
            content_type: request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Content-Type"))
                .map(|h| h.value.as_str().to_owned()),
            body: serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw)),
        };
        let mut guard = lock(&state);
        guard.requests.push(recorded);
        let (status, body) = match mode {
            WebhookMode::Ok => (200, "ok".to_owned()),
            WebhookMode::Status(code) => (code, format!("status_{code}")),
            WebhookMode::Hang => {
                guard.held.push(request);
                continue;
            }
        };
        drop(guard);
        let response = Response::from_string(body)
            .with_status_code(status)
            .with_header(
                Header::from_bytes(&b"Content-Type"[..], &b"text/plain"[..])
                    .expect("static header"),
            );
        let _ = request.respond(response);
    }
}
