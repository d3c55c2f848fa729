//! A local AWS Lambda Runtime API: the subset a `lambda_runtime` function speaks.
//!
//! The function long-polls `GET /2018-06-01/runtime/invocation/next`; [`RuntimeApi::invoke`]
//! queues an event for it and waits for `POST .../invocation/{id}/response` or `.../error`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::process::ExitStatus;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tiny_http::{Header, Method, Request, Response, Server};

use crate::net;

pub const FUNCTION_NAME: &str = "ec2-reaper";
const PREFIX: &str = "/2018-06-01/runtime";

/// What became of one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// The function posted a result (`.../response`).
    Response(serde_json::Value),
    /// The function posted an error (`.../error`): the handler returned `Err` or panicked.
    Error {
        error_type: String,
        error_message: String,
    },
    /// The function failed to initialise (`.../init/error`), e.g. a bad configuration.
    InitError {
        error_type: String,
        error_message: String,
    },
    /// No answer within the timeout.
    TimedOut,
    /// The function process exited without answering (only from [`crate::Function::invoke`]).
    Exited(ExitStatus),
}

impl Invocation {
    /// The response, or a panic that shows what happened instead.
    #[track_caller]
    pub fn unwrap_response(self) -> serde_json::Value {
        match self {
            Invocation::Response(v) => v,
            other => panic!("expected a function response, got {other:?}"),
        }
    }
}

struct Queued {
    id: String,
    /// The event's bytes as the function receives them (not necessarily JSON, nor UTF-8).
    body: Vec<u8>,
    deadline_ms: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    in_flight: HashSet<String>,
    results: HashMap<String, Invocation>,
    init_error: Option<Invocation>,
    polls: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    function_arn: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The Runtime API server, on `127.0.0.1` in a background thread; shut down on drop.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    address: String,
    acceptor: Option<JoinHandle<()>>,
}

impl RuntimeApi {
    /// Serves the Runtime API for a function `ec2-reaper` in `region` (account 123456789012).
    pub fn start(region: &str) -> RuntimeApi {
        let server = Server::http("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("reaper-e2e: cannot start the Runtime API server: {e}"));
        let address = server
            .server_addr()
            .to_ip()
            .expect("a TCP listener has an IP address")
            .to_string();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            function_arn: format!(
                "arn:aws:lambda:{region}:{}:function:{FUNCTION_NAME}",
                crate::Moto::ACCOUNT_ID
            ),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("runtime-api".into())
                .spawn(move || accept(server, shared))
                .expect("spawn the Runtime API thread")
        };
        RuntimeApi {
            shared,
            address,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// `arn:aws:lambda:<region>:123456789012:function:ec2-reaper`
    pub fn function_arn(&self) -> String {
        self.shared.function_arn.clone()
    }

    /// How many `GET .../invocation/next` requests have arrived: 1 means the function finished
    /// its initialisation and waits for its first event.
    pub fn polls(&self) -> usize {
        self.shared.lock().polls
    }

    /// Waits until at least `n` polls have arrived; false on timeout.
    pub fn wait_for_polls(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.polls < n {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, end - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Queues `event` and waits up to `timeout` for the function's answer. The function is told
    /// its deadline is `deadline_in` from now (`Lambda-Runtime-Deadline-Ms`).
    pub fn invoke(
        &self,
        event: serde_json::Value,
        timeout: Duration,
        deadline_in: Duration,
    ) -> Invocation {
        self.invoke_watching(event.to_string().as_bytes(), timeout, deadline_in, &|| None)
    }

    /// [`RuntimeApi::invoke`], returning early with `gone()`'s status when it reports one.
    pub(crate) fn invoke_watching(
        &self,
        body: &[u8],
        timeout: Duration,
        deadline_in: Duration,
        gone: &dyn Fn() -> Option<ExitStatus>,
    ) -> Invocation {
        let id = uuid::Uuid::new_v4().to_string();
        let end = Instant::now() + timeout;
        let mut state = self.shared.lock();
        if let Some(init_error) = state.init_error.clone() {
            return init_error;
        }
        state.queue.push_back(Queued {
            id: id.clone(),
            body: body.to_vec(),
            deadline_ms: net::epoch_ms() + deadline_in.as_millis() as u64,
        });
        self.shared.changed.notify_all();
        loop {
            if let Some(result) = state.results.remove(&id) {
                return result;
            }
            if let Some(init_error) = state.init_error.clone() {
                state.queue.retain(|q| q.id != id);
                return init_error;
            }
            let now = Instant::now();
            if now >= end {
                // A late answer is then recorded and ignored; a queued event is withdrawn so a
                // later function does not receive it.
                state.queue.retain(|q| q.id != id);
                return Invocation::TimedOut;
            }
            let slice = (end - now).min(Duration::from_millis(50));
            state = self
                .shared
                .changed
                .wait_timeout(state, slice)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if !state.results.contains_key(&id) {
                drop(state);
                if let Some(status) = gone() {
                    let mut state = self.shared.lock();
                    state.queue.retain(|q| q.id != id);
                    // An answer that raced the exit still wins.
                    return state
                        .results
                        .remove(&id)
                        .unwrap_or(Invocation::Exited(status));
                }
                state = self.shared.lock();
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept(server: Server, shared: Arc<Shared>) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    loop {
        if shared.lock().shutdown {
            break;
        }
        match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(request)) => {
                let shared = Arc::clone(&shared);
                // `next` blocks; each request gets its own thread so responses are never stuck
                // behind a long poll.
                handlers.push(thread::spawn(move || handle(request, &shared)));
                handlers.retain(|h| !h.is_finished());
            }
            Ok(None) => {}
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    for handler in handlers {
        let _ = handler.join();
    }
}

fn handle(mut request: Request, shared: &Shared) {
    let url = request.url().to_owned();
    let path = url.split('?').next().unwrap_or_default().to_owned();
    let method = request.method().clone();
    let Some(route) = path.strip_prefix(PREFIX) else {
        return respond_json(request, 404, &error_body("NotFound", &path));
    };
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);

    match (&method, route) {
        (Method::Get, "/invocation/next") => next(request, shared),
        (Method::Post, "/init/error") => {
            let (error_type, error_message) = diagnostic(&body, &request);
            shared.lock().init_error = Some(Invocation::InitError {
                error_type,
                error_message,
            });
            shared.changed.notify_all();
            respond_json(request, 202, &serde_json::json!({"status": "OK"}));
        }
        (Method::Post, route) => {
            let parts: Vec<&str> = route.trim_start_matches('/').split('/').collect();
            let ["invocation", id, kind @ ("response" | "error")] = parts[..] else {
                return respond_json(request, 404, &error_body("NotFound", &path));
            };
            let result = if kind == "response" {
                let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
                Invocation::Response(value)
            } else {
                let (error_type, error_message) = diagnostic(&body, &request);
                Invocation::Error {
                    error_type,
                    error_message,
                }
            };
            let mut state = shared.lock();
            if !state.in_flight.remove(id) {
                drop(state);
                let message = format!("request id {id} is not in flight");
                return respond_json(request, 400, &error_body("InvalidRequestID", &message));
            }
            state.results.insert(id.to_owned(), result);
            drop(state);
            shared.changed.notify_all();
            respond_json(request, 202, &serde_json::json!({"status": "OK"}));
        }
        _ => respond_json(request, 404, &error_body("NotFound", &path)),
    }
}

fn next(request: Request, shared: &Shared) {
    let mut state = shared.lock();
    state.polls += 1;
    shared.changed.notify_all();
    let queued = loop {
        if state.shutdown {
            drop(state);
            // Real Lambda would freeze or kill the sandbox; an error makes the runtime exit.
            return respond_json(
                request,
                500,
                &error_body("ServiceShutdown", "the local Runtime API is shutting down"),
            );
        }
        if let Some(queued) = state.queue.pop_front() {
            break queued;
        }
        state = shared
            .changed
            .wait_timeout(state, Duration::from_millis(200))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    };
    state.in_flight.insert(queued.id.clone());
    drop(state);

    let trace_id = format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        net::epoch_ms() / 1000,
        &uuid::Uuid::new_v4().simple().to_string()[..24],
        &uuid::Uuid::new_v4().simple().to_string()[..16],
    );
    let response = Response::from_data(queued.body)
        .with_status_code(200)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Lambda-Runtime-Aws-Request-Id", &queued.id))
        .with_header(header(
            "Lambda-Runtime-Deadline-Ms",
            &queued.deadline_ms.to_string(),
        ))
        .with_header(header(
            "Lambda-Runtime-Invoked-Function-Arn",
            &shared.function_arn,
        ))
        .with_header(header("Lambda-Runtime-Trace-Id", &trace_id));
    let _ = request.respond(response);
}

/// `{"errorType": .., "errorMessage": ..}` as `lambda_runtime` posts it; the type falls back to
/// the `Lambda-Runtime-Function-Error-Type` header.
fn diagnostic(body: &str, request: &Request) -> (String, String) {
    let header_type = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Lambda-Runtime-Function-Error-Type"))
        .map(|h| h.value.as_str().to_owned());
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => (
            v.get("errorType")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
                .or(header_type)
                .unwrap_or_default(),
            v.get("errorMessage")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| body.to_owned()),
        ),
        Err(_) => (header_type.unwrap_or_default(), body.to_owned()),
    }
}

fn error_body(error_type: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"errorType": error_type, "errorMessage": message})
}

fn respond_json(request: Request, status: u16, body: &serde_json::Value) {
    let response = Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"));
    let _ = request.respond(response);
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("header names and values are ASCII")
}
